"""Packaging for hosts (issue 10): the wheel, the man page, the Dockerfile, the unit files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from proxy.cli import build_parser
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


# -- wheel -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True, env={**clean_env(), "TMPDIR": str(build)}, cwd=build,
        timeout=60 * TIMEOUT, check=False)
    if result.returncode != 0 and (b"No module named" in result.stderr
                                   or b"invalid command 'bdist_wheel'" in result.stderr):
        pytest.skip(f"cannot build a wheel here: {result.stderr.decode()[-200:]}")
    assert result.returncode == 0, result.stderr.decode()
    [path] = out.glob("*.whl")
    return path


def test_wheel_is_pure_python_and_ships_the_shim_source(wheel: Path) -> None:
    assert wheel.name.endswith("-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "proxy/rebind.c" in names
    assert "proxy/py.typed" in names
    assert not [n for n in names if n.endswith((".so", ".o"))]
    assert not [n for n in names if n.startswith("tests/")]


def test_wheel_installs_into_a_fresh_venv_and_runs(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60 * TIMEOUT)
    python = venv / "bin" / "python"
    # The wheel with this interpreter's pip, offline, into the fresh venv only.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-index", "--target", str(tmp_path / "site"), str(wheel)],
                   check=True, timeout=60 * TIMEOUT, env=clean_env())
    # The pure-Python dependencies, taken from the test environment (no network).
    deps = tmp_path / "deps"
    deps.mkdir()
    import configargparse
    import h11
    import wsproto

    for module in (wsproto, h11):
        os.symlink(Path(module.__file__ or "").parent, deps / module.__name__)
    os.symlink(configargparse.__file__ or "", deps / "configargparse.py")
    env = {**clean_env(), "PYTHONPATH": f"{tmp_path / 'site'}:{deps}"}
    result = subprocess.run([str(python), "-m", "proxy", "--version"], capture_output=True,
                            env=env, cwd=tmp_path, timeout=6 * TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"websockify (websockify-threaded) ")
    where = subprocess.run(
        [str(python), "-c", "import proxy, importlib.resources as r; print(proxy.__file__); "
         "print(len(r.files('proxy').joinpath('rebind.c').read_bytes()))"],
        capture_output=True, env=env, cwd=tmp_path, timeout=6 * TIMEOUT, check=True)
    file, size = where.stdout.decode().split()
    assert file.startswith(str(tmp_path / "site")) and int(size) > 1000


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
