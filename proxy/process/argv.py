"""Make argparse read a command line the way websockify's optparse did (pure).

Two differences matter to scripts written for websockify 0.13.0 (notes §3.2):
abbreviations (``--tr`` means ``--traffic`` in 0.13.0 and must keep meaning it after we
add options with the same prefix), and option values that begin with ``-``
(``--key-password -x``), which optparse accepts and argparse refuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: websockify 0.13.0's long options; an abbreviation unique among them keeps its meaning.
LEGACY_OPTIONS = frozenset({
    "--help", "--verbose", "--traffic", "--record", "--daemon", "--run-once", "--timeout",
    "--idle-timeout", "--cert", "--key", "--key-password", "--ssl-only", "--ssl-target",
    "--verify-client", "--cafile", "--ssl-version", "--ssl-ciphers", "--unix-listen",
    "--unix-listen-mode", "--unix-target", "--inetd", "--web", "--web-auth", "--wrap-mode",
    "--prefer-ipv6", "--libserver", "--target-config", "--token-plugin", "--token-source",
    "--host-token", "--auth-plugin", "--auth-source", "--heartbeat", "--log-file", "--syslog",
    "--legacy-syslog", "--file-only",
})


def resolve_option(name: str, options: Mapping[str, bool]) -> str | None:
    """The full option ``name`` stands for; None when unknown.

    Raises:
        ValueError: the abbreviation matches several options (optparse's message).
    """
    if name in options:
        return name
    legacy = [option for option in LEGACY_OPTIONS if option.startswith(name)]
    if len(legacy) == 1:
        return legacy[0]
    candidates = sorted(option for option in options if option.startswith(name))
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise ValueError(f"ambiguous option: {name} ({', '.join(candidates)}?)")
    return None


def expand_argv(args: Sequence[str], options: Mapping[str, bool]) -> list[str]:
    """Spell out abbreviated long options and join each with its value as ``--opt=value``.

    Args:
        args: the command line before any ``--`` (the wrapped command is not touched).
        options: long option name -> whether it takes a value.

    Raises:
        ValueError: an ambiguous abbreviation or a missing value, in optparse's words.
    """
    out: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if not arg.startswith("--") or arg == "--":
            out.append(arg)
            continue
        name, equals, value = arg.partition("=")
        full = resolve_option(name, options)
        if full is None:
            out.append(arg)  # reported as "no such option" after parsing
            continue
        if options[full] and not equals:
            if index >= len(args):
                raise ValueError(f"{full} option requires 1 argument")
            value, equals = args[index], "="
            index += 1
        elif not options[full] and equals:
            raise ValueError(f"{full} option does not take a value")
        out.append(full + equals + value)
    return out
