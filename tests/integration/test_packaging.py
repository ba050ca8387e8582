"""Packaging for hosts (issue 10): the wheel, the man page, the Dockerfile, the unit files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy.process.cli import build_parser
from tests.conftest import TIMEOUT
from tests.support.process import clean_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAN_PAGE = ROOT / "docs" / "websockify.1"
DOCKERFILE = ROOT / "contrib" / "docker" / "Dockerfile"


def long_options() -> set[str]:
    return {name for action in build_parser()._actions for name in action.option_strings
            if name.startswith("--")}


# -- man page --------------------------------------------------------------------------------


def test_man_page_names_every_option() -> None:
    # In roff source a "-" is written "\-".
    text = MAN_PAGE.read_text().replace("\\-", "-")
    missing = sorted(opt for opt in long_options() if opt not in text)
    assert not missing, f"docs/websockify.1 does not describe {missing}"


@pytest.mark.skipif(not (shutil.which("man") or shutil.which("groff")),
                    reason="neither man nor groff installed (scripts/test installs groff-base)")
def test_man_page_renders_without_warnings() -> None:
    env = {**clean_env(), "MANWIDTH": "80", "LC_ALL": "C.UTF-8"}
    if shutil.which("groff"):
        argv = ["groff", "-man", "-Tutf8", "-ww", str(MAN_PAGE)]
    else:
        argv = ["man", "--warnings", "-l", str(MAN_PAGE)]
    result = subprocess.run(argv, capture_output=True, env=env, timeout=6 * TIMEOUT,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b"", result.stderr.decode()
    text = re.sub(r".\x08", "", result.stdout.decode())  # drop overstrike bold
    assert "WEBSOCKIFY(1)" in text and "--drain-timeout" in text


# -- user docs -------------------------------------------------------------------------------

USER_DOCS = [ROOT / "README.rst", *sorted((ROOT / "docs").glob("*.rst")), MAN_PAGE]


def test_every_install_line_works_without_the_package_index() -> None:
    """#18: nothing called websockify-threaded is on the package index, so no install line
    may ask pip for it by name; '.[redis]' in a clone or a built wheel's path work."""
    offenders = [f"{path.name}: {line.strip()}" for path in USER_DOCS
                 for line in path.read_text().splitlines()
                 if re.search(r"pip install\b[^#]*?(?<![\w.-])websockify-threaded\b", line)]
    assert not offenders
    readme = (ROOT / "README.rst").read_text()
    assert "pip install '.[redis]'" in readme


#: "spec §8", "§13.15", "issue 10", "(#16 Operations 2)": references to documents a reader
#: of the installed docs does not have. RFC sections are fine.
PRIVATE_REFERENCE = re.compile(r"(?<!RFC \d{4} )§\s*\d|\bissues?\s+#?(\d+)|\(#\d+|#\d+ [A-Z]")


def test_user_docs_have_no_references_a_reader_cannot_follow() -> None:
    """#18: user docs stand alone; websockify's own issues are linked where named."""
    offenders = []
    for path in USER_DOCS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in PRIVATE_REFERENCE.finditer(line):
                linked = match[1] and f"github.com/novnc/websockify/issues/{match[1]}>" in line
                if not linked:
                    offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders


# -- sdist and wheel -------------------------------------------------------------------------


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path
    log: str


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist and the wheel built from it, as ``python -m build`` makes them (#18).

    ``--no-isolation``: the test environment's setuptools (the test extra), no download.
    """
    out = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, env={**clean_env(), "TMPDIR": str(build)}, cwd=build,
        timeout=60 * TIMEOUT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return Dists(sdist, wheel, result.stdout + result.stderr)


@pytest.fixture(scope="module")
def wheel(dists: Dists) -> Path:
    return dists.wheel


def packages_in_tree() -> set[str]:
    """``proxy`` and every subpackage of it in the source tree (directories with __init__)."""
    return {str(init.parent.relative_to(ROOT)).replace(os.sep, ".")
            for init in (ROOT / "proxy").rglob("__init__.py")
            if "__pycache__" not in init.parts and "_websockify" not in init.parts}


def test_wheel_is_pure_python_and_ships_the_shim_source(wheel: Path) -> None:
    assert wheel.name.endswith("-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "proxy/process/rebind.c" in names
    assert "proxy/py.typed" in names
    assert not [n for n in names if n.endswith((".so", ".o"))]
    assert not [n for n in names if n.startswith("tests/")]


def test_wheel_holds_the_websockify_package_and_every_proxy_subpackage(wheel: Path) -> None:
    """setup.cfg lists the packages; one left off would be silently missing (#18)."""
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"proxy.access.tokens", "proxy"} <= packages_in_tree()
    for package in packages_in_tree():
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    for module in ("__init__", "__main__", "token_plugins", "auth_plugins"):
        assert f"websockify/{module}.py" in names
    assert not [n for n in names if n.startswith("proxy/_websockify/")]


def test_wheel_carries_the_licence_man_page_and_metadata(dists: Dists) -> None:
    wheel = zipfile.ZipFile(dists.wheel)
    info = f"{dists.wheel.name.split('-')[0]}-{dists.wheel.name.split('-')[1]}"
    assert wheel.read(f"{info}.dist-info/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert wheel.read(f"{info}.dist-info/licenses/COPYING") == (ROOT / "COPYING").read_bytes()
    assert b"GNU LESSER GENERAL PUBLIC LICENSE" in (ROOT / "LICENSE").read_bytes()[:200]
    assert b"GNU GENERAL PUBLIC LICENSE" in (ROOT / "COPYING").read_bytes()[:200]
    assert wheel.read(f"{info}.data/data/share/man/man1/websockify.1") == MAN_PAGE.read_bytes()
    metadata = wheel.read(f"{info}.dist-info/METADATA").decode()
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert "License-Expression: LGPL-3.0-or-later" in headers
    assert {"License-File: LICENSE", "License-File: COPYING"} <= set(headers)
    assert not [h for h in headers if h.startswith(("License:", "Classifier: License ::"))]
    versions = {h.rsplit(" ", 1)[1] for h in headers
                if re.fullmatch(r"Classifier: Programming Language :: Python :: 3\.\d+", h)}
    assert versions == {"3.10", "3.11", "3.12", "3.13"}


def test_sdist_holds_what_the_wheel_is_built_from(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "COPYING", "README.rst", "pyproject.toml", "setup.cfg", "setup.py",
            "docs/websockify.1", "proxy/_websockify/__main__.py", "proxy/process/rebind.c"} <= names


def test_build_has_no_deprecation_warning_and_twine_check_passes(dists: Dists) -> None:
    """pyproject.toml's backend: no legacy setup.py path, no licence deprecation (#18)."""
    assert "eprecat" not in dists.log, dists.log
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists.sdist), str(dists.wheel)],
        capture_output=True, text=True, env={**clean_env(), "NO_COLOR": "1"},
        timeout=60 * TIMEOUT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def dependency_path(tmp_path: Path) -> Path:
    """The pure-Python dependencies, linked from the test environment (no network)."""
    deps = tmp_path / "deps"
    deps.mkdir(exist_ok=True)
    import configargparse
    import h11
    import wsproto

    for module in (wsproto, h11):
        if not (deps / module.__name__).exists():
            os.symlink(Path(module.__file__ or "").parent, deps / module.__name__)
    if not (deps / "configargparse.py").exists():
        os.symlink(configargparse.__file__ or "", deps / "configargparse.py")
    return deps


def test_wheel_installs_into_a_fresh_venv_and_runs(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60 * TIMEOUT)
    python = venv / "bin" / "python"
    # The wheel with this interpreter's pip, offline, into the fresh venv only.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-index", "--target", str(tmp_path / "site"), str(wheel)],
                   check=True, timeout=60 * TIMEOUT, env=clean_env())
    deps = dependency_path(tmp_path)
    env = {**clean_env(), "PYTHONPATH": f"{tmp_path / 'site'}:{deps}"}
    result = subprocess.run([str(python), "-m", "proxy", "--version"], capture_output=True,
                            env=env, cwd=tmp_path, timeout=6 * TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"websockify (websockify-threaded) ")
    where = subprocess.run(
        [str(python), "-c", "import proxy, importlib.resources as r; print(proxy.__file__); "
         "print(len(r.files('proxy.process').joinpath('rebind.c').read_bytes()))"],
        capture_output=True, env=env, cwd=tmp_path, timeout=6 * TIMEOUT, check=True)
    file, size = where.stdout.decode().split()
    assert file.startswith(str(tmp_path / "site")) and int(size) > 1000


def pyenv_pythons() -> list[Path]:
    """The newest installed pyenv CPython of each supported minor version (3.10-3.13)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    if shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                               timeout=6 * TIMEOUT, check=False).stdout.strip()
        root = Path(found) if found else root
    newest: dict[tuple[int, int], tuple[tuple[int, ...], Path]] = {}
    for entry in sorted((root / "versions").glob("3.*")):
        match = re.fullmatch(r"3\.(\d+)\.(\d+)", entry.name)
        python = entry / "bin" / "python"
        if match and 10 <= int(match[1]) <= 13 and python.exists():
            version = (3, int(match[1]), int(match[2]))
            if version > newest.get(version[:2], ((0,), python))[0]:
                newest[version[:2]] = (version, python)
    return [python for _, python in sorted(newest.values())]


def test_wheel_installs_and_runs_on_every_pyenv_cpython(wheel: Path, tmp_path: Path) -> None:
    """One wheel, installed by pip into a venv of each CPython 3.10-3.13 that pyenv has (#18):
    the console script, ``python -m websockify`` and the man page."""
    pythons = pyenv_pythons()
    if not pythons:
        pytest.skip("no pyenv CPython 3.10-3.13 installed")
    deps = dependency_path(tmp_path)
    for interpreter in pythons:
        venv = tmp_path / interpreter.parents[1].name
        subprocess.run([str(interpreter), "-m", "venv", "--without-pip", str(venv)],
                       check=True, timeout=60 * TIMEOUT)
        # This environment's pip installs into that venv (pip --python): the console
        # script's first line names the venv's interpreter.
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                        "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                       check=True, timeout=60 * TIMEOUT, env=clean_env())
        site = next((venv / "lib").glob("python3.*/site-packages"))
        (site / "test-deps.pth").write_text(f"{deps}\n")
        env = clean_env()
        version = subprocess.run([str(venv / "bin" / "websockify"), "--version"],
                                 capture_output=True, text=True, env=env, cwd=tmp_path,
                                 timeout=6 * TIMEOUT, check=False)
        assert version.returncode == 0, (interpreter, version.stderr)
        assert version.stdout.startswith("websockify (websockify-threaded) "), interpreter
        usage = subprocess.run([str(venv / "bin" / "python"), "-m", "websockify", "--help"],
                               capture_output=True, text=True, env=env, cwd=tmp_path,
                               timeout=6 * TIMEOUT, check=False)
        assert usage.returncode == 0, (interpreter, usage.stderr)
        assert usage.stdout.startswith("Usage: \n    websockify [options]"), interpreter
        assert (venv / "share" / "man" / "man1" / "websockify.1").read_bytes() == \
            MAN_PAGE.read_bytes()


# -- Dockerfile and unit files ---------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
            for line in lines if line and not line.startswith("#")]


def test_dockerfile_lints_statically() -> None:
    instructions = dockerfile_instructions()
    known = {"FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER", "EXPOSE", "HEALTHCHECK",
             "ENTRYPOINT", "CMD", "ARG", "LABEL"}
    assert {kind for kind, _ in instructions} <= known
    kinds = [kind for kind, _ in instructions]
    assert kinds[0] == "FROM" and re.fullmatch(r"python:3\.\d+-slim", instructions[0][1])
    assert "ADD" not in kinds  # COPY only
    users = [arg for kind, arg in instructions if kind == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")
    for kind, arg in instructions:
        if kind == "COPY":
            for source in arg.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY source {source} missing"
        if kind in ("ENTRYPOINT", "CMD"):
            assert arg.startswith("["), f"{kind} should use the exec form"
    assert "--health-path" in dict(instructions)["ENTRYPOINT"]


def test_the_dockerfile_copies_everything_the_wheel_is_built_from(tmp_path: Path) -> None:
    """Without docker: a wheel builds from exactly the files the COPY lines take (#18 added
    pyproject.toml, the licence files and the man page to the build's inputs)."""
    context = tmp_path / "context"
    for kind, arg in dockerfile_instructions():
        if kind != "COPY":
            continue
        *sources, dest = arg.split()
        for source in sources:
            target = context / dest / Path(source).name if dest.endswith("/") \
                else context / dest
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, target)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
         str(tmp_path / "out"), str(context)],
        capture_output=True, text=True, env=clean_env(), cwd=tmp_path,
        timeout=60 * TIMEOUT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = (tmp_path / "out").glob("*.whl")
    assert "websockify/__main__.py" in zipfile.ZipFile(wheel).namelist()


@pytest.mark.slow
def test_docker_image_builds_where_docker_answers(tmp_path: Path) -> None:
    if not shutil.which("docker"):
        pytest.skip("docker not installed")
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=6 * TIMEOUT,
                          check=False)
    if info.returncode != 0:
        pytest.skip("docker info does not answer (no daemon)")
    tag = f"websockify-threaded-test:{os.getpid()}"
    result = subprocess.run(["docker", "build", "-q", "-f", str(DOCKERFILE), "-t", tag,
                             str(ROOT)], capture_output=True, timeout=120 * TIMEOUT,
                            check=False)
    assert result.returncode == 0, result.stderr.decode()
    try:
        run = subprocess.run(["docker", "run", "--rm", tag, "--version"], capture_output=True,
                             timeout=24 * TIMEOUT, check=False)
        assert run.stdout.startswith(b"websockify (websockify-threaded) ")
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=24 * TIMEOUT,
                       check=False)


def test_systemd_units_agree() -> None:
    socket_unit = (ROOT / "contrib" / "systemd" / "websockify@.socket").read_text()
    service = (ROOT / "contrib" / "systemd" / "websockify@.service").read_text()
    assert re.search(r"^ListenStream=%i$", socket_unit, re.M)
    assert re.search(r"^Accept=no$", socket_unit, re.M)
    assert "Requires=websockify@%i.socket" in service
    exec_start = re.search(r"^ExecStart=(.*(?:\\\n.*)*)", service, re.M)
    assert exec_start is not None
    words = exec_start.group(1).replace("\\\n", " ").split()
    assert "--daemon" not in words and "-D" not in words
    for word in words:
        if word.startswith("--"):
            assert word in long_options(), word
