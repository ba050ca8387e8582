/*
 * LD_PRELOAD shim for websockify's wrap mode (proxy/wrap.py compiles it on first use).
 *
 * The proxy binds (but does not listen on) a private loopback socket and passes it to the
 * wrapped command as file descriptor REBIND_FD.  When the command binds a TCP socket to
 * port REBIND_OLD_PORT (IPv4 or IPv6), this bind() puts that ready-bound socket in place
 * of the command's socket (dup2, keeping its file status and close-on-exec flags) and
 * returns success, so the command listens on the private port the proxy already knows:
 * no free port is guessed, so nothing can race for it (websockify's rebind.so picks the
 * port by binding 0 and closing it, spec section 13.12).
 *
 * A later bind to REBIND_OLD_PORT (a second address family, a respawned child of the
 * command) gets an ephemeral loopback port instead, so it cannot take the public port.
 *
 * When REBIND_PARENT_PID names our parent, the process asks the kernel for SIGTERM when
 * that parent dies (PR_SET_PDEATHSIG): the command is never orphaned, even if the proxy
 * is killed with SIGKILL.  Processes the command starts are left alone.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static long env_number(const char *name)
{
    const char *text = getenv(name);
    char *end;
    long value;

    if (text == NULL || *text == '\0')
        return -1;
    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < 0)
        return -1;
    return value;
}

__attribute__((constructor)) static void rebind_init(void)
{
    long parent = env_number("REBIND_PARENT_PID");

    if (parent > 0 && (long)getppid() == parent) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if ((long)getppid() != parent)  /* the parent died before prctl() */
            raise(SIGTERM);
    }
}

static int requested_port(const struct sockaddr *addr, socklen_t len)
{
    if (addr == NULL)
        return -1;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
        return ntohs(((const struct sockaddr_in *)addr)->sin_port);
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
        return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    return -1;
}

static int is_stream(int fd)
{
    int type = 0;
    socklen_t len = sizeof(type);

    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

/* The passed socket, if REBIND_FD still names an unused TCP socket bound to NEW_PORT. */
static int passed_socket(void)
{
    long fd = env_number("REBIND_FD");
    long port = env_number("REBIND_NEW_PORT");
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);

    if (fd < 0 || port < 0 || !is_stream((int)fd))
        return -1;
    if (getsockname((int)fd, (struct sockaddr *)&local, &len) != 0)
        return -1;
    if (requested_port((struct sockaddr *)&local, len) != port)
        return -1;
    return (int)fd;
}

/* Replace fd by the passed socket: same descriptor number, flags kept. */
static int adopt(int fd, int passed)
{
    int status = fcntl(fd, F_GETFL);
    int cloexec = fcntl(fd, F_GETFD);

    if (status < 0 || cloexec < 0)
        return -1;
    if (fcntl(passed, F_SETFL, status) != 0)
        return -1;
    if (dup2(passed, fd) < 0)
        return -1;
    fcntl(fd, F_SETFD, cloexec);
    close(passed);
    unsetenv("REBIND_FD");  /* used once; children must not look for it */
    return 0;
}

/* Any later bind to the public port: an ephemeral loopback port of the same family. */
static int bind_elsewhere(bind_fn real, int fd, const struct sockaddr *addr)
{
    if (addr->sa_family == AF_INET6) {
        struct sockaddr_in6 any6;

        memset(&any6, 0, sizeof(any6));
        any6.sin6_family = AF_INET6;
        any6.sin6_addr = in6addr_loopback;
        return real(fd, (struct sockaddr *)&any6, sizeof(any6));
    } else {
        struct sockaddr_in any4;

        memset(&any4, 0, sizeof(any4));
        any4.sin_family = AF_INET;
        any4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return real(fd, (struct sockaddr *)&any4, sizeof(any4));
    }
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static bind_fn real = NULL;
    long old_port = env_number("REBIND_OLD_PORT");
    int passed;

    if (real == NULL)
        real = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (old_port <= 0 || requested_port(addr, len) != old_port || !is_stream(fd))
        return real(fd, addr, len);
    passed = passed_socket();
    if (passed >= 0 && passed != fd && adopt(fd, passed) == 0)
        return 0;
    return bind_elsewhere(real, fd, addr);
}
