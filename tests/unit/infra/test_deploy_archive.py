"""The deploy archive boots as the Python buildpack starts it.

infra/main.tf zips the repository root minus infra/source_archive.json's
excludes. This test builds the same archive from the same file, unpacks it,
installs what its requirements.txt installs from the archive itself (`.`: the
project), and starts every function under functions/ the way the buildpack's
launch process does: the `functions-framework` console script with
FUNCTION_TARGET and FUNCTION_SOURCE, cwd = the archive root, and no
PYTHONPATH. The third-party dependencies come from this venv's site-packages
(a .pth file in a fresh venv), never from the repository. Each function must
answer one request; a function whose imports fail never listens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
import requests

from local.emulators import free_port, stop_group
from local.stack import function_env, ports_for

REPO = Path(__file__).resolve().parents[3]
SPEC = REPO / "infra" / "source_archive.json"
FUNCTIONS = sorted(p.parent.name for p in (REPO / "functions").glob("*/main.py"))
DEPLOYED_TOP_LEVEL = {"functions", "shared", "requirements.txt", "pyproject.toml"}
BOOT_TIMEOUT = 90.0
# Functions that read Firestore before they can answer any request.
NEEDS_FIRESTORE_TO_ANSWER = {"campaign_scheduler"}


def excludes() -> list[str]:
    patterns: list[str] = json.loads(SPEC.read_text(encoding="utf-8"))["excludes"]
    return patterns


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """doublestar's PathMatch, for the subset the excludes use: `**/`, `*`."""
    assert not set(pattern) & set("?[]{}!\\"), f"unsupported glob {pattern!r}"
    out = ""
    for part in re.split(r"(\*\*/|\*)", pattern):
        if part == "**/":
            out += "(?:[^/]+/)*"
        elif part == "*":
            out += "[^/]*"
        else:
            out += re.escape(part)
    return re.compile(out + r"\Z")


def archive_members(root: Path) -> list[str]:
    """The files archive_file zips: a walk that skips excluded directories."""
    rules = [_glob_regex(p) for p in excludes()]
    members: list[str] = []
    for current, dirs, files in os.walk(root):
        base = Path(current).relative_to(root)
        dirs[:] = sorted(
            d for d in dirs if not any(r.match((base / d).as_posix()) for r in rules)
        )
        for name in sorted(files):
            rel = (base / name).as_posix()
            if not any(r.match(rel) for r in rules):
                members.append(rel)
    return members


def test_exclude_globs_match_as_the_archive_provider_does() -> None:
    assert _glob_regex("**/__pycache__").match("__pycache__")
    assert _glob_regex("**/__pycache__").match("shared/api/__pycache__")
    assert _glob_regex("**/*.pyc").match("shared/x.pyc")
    assert not _glob_regex("tests").match("shared/tests")
    assert not _glob_regex("*.egg-info").match("shared/x.egg-info")


def test_archive_holds_the_deployed_code_and_nothing_else() -> None:
    members = archive_members(REPO)
    assert {m.split("/")[0] for m in members} == DEPLOYED_TOP_LEVEL
    # Every file under functions/ and shared/ ships, whatever its type (the
    # console's static files too), except bytecode caches.
    for folder in ("functions", "shared"):
        on_disk = {
            p.relative_to(REPO).as_posix()
            for p in (REPO / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        }
        assert on_disk <= set(members), sorted(on_disk - set(members))


def test_terraform_zips_with_the_shared_exclude_list() -> None:
    main_tf = (REPO / "infra" / "main.tf").read_text(encoding="utf-8")
    assert (
        'excludes = jsondecode(file("${path.module}/source_archive.json")).excludes'
        in main_tf
    )


# --------------------------------------------------------------------------
# Booting every function from the unpacked archive
# --------------------------------------------------------------------------


@dataclass
class Booted:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    firestore: str | None


def _unpack_archive(tmp: Path) -> Path:
    zipped = tmp / "function-source.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in archive_members(REPO):
            archive.write(REPO / member, member)
    root = tmp / "workspace"
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(root)
    return root


def _local_requirements(requirements: Path) -> list[str]:
    """requirements.txt lines that install from the archive itself."""
    lines = [
        line.split("#")[0].strip()
        for line in requirements.read_text(encoding="utf-8").splitlines()
    ]
    for line in lines:
        if "==" in line:
            name, version = line.split("==")
            # The pins come from this venv (make install installed them).
            assert metadata.version(name) == version, line
    return [line for line in lines if line.startswith((".", "/"))]


def _buildpack_venv(tmp: Path, workspace: Path) -> Path:
    """A fresh venv that sees our third-party packages, plus the archive's
    own requirements installed into it, and the console script."""
    venv = tmp / "venv"
    subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
    )
    python = venv / "bin" / "python"
    site = subprocess.run(  # noqa: S603 - fixed argv
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "_dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n", encoding="utf-8"
    )
    for requirement in _local_requirements(workspace / "requirements.txt"):
        subprocess.run(  # noqa: S603 - fixed argv
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(python),
                "install",
                "--quiet",
                "--no-deps",
                "--no-index",
                "--no-build-isolation",
                requirement,
            ],
            cwd=workspace,
            check=True,
        )
    entry = metadata.entry_points(group="console_scripts", name="functions-framework")
    module, _, attr = next(iter(entry)).value.partition(":")
    script = venv / "bin" / "functions-framework"
    script.write_text(
        f"#!{python}\nimport sys\nfrom {module} import {attr}\nsys.exit({attr}())\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return venv


def _buildpack_env(
    venv: Path, name: str, port: int, firestore: str | None
) -> dict[str, str]:
    # Settings as the local stack passes them, their other backends closed
    # ports: the requests below are answered before reaching them.
    settings = function_env(ports_for(free_port()), {})
    settings.pop("PYTHONPATH")
    if firestore:
        settings["FIRESTORE_EMULATOR_HOST"] = firestore
    return {
        **settings,
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(venv),
        "FUNCTION_TARGET": name,
        "FUNCTION_SOURCE": f"functions/{name}/main.py",
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }


def _signature(name: str) -> str:
    source = (REPO / "functions" / name / "main.py").read_text(encoding="utf-8")
    return "cloudevent" if "@functions_framework.cloud_event" in source else "http"


def _request(name: str, port: int) -> requests.Response:
    base = f"http://127.0.0.1:{port}"
    if _signature(name) == "http":
        # Unauthenticated, unsigned or malformed: answered before any backend.
        return requests.post(f"{base}/", data=b"{}", timeout=30)
    # A Pub/Sub push whose payload cannot parse (a poison message).
    envelope = {"message": {"data": "e30=", "messageId": "1"}, "subscription": "s"}
    headers = {
        "ce-id": "boot-1",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-specversion": "1.0",
        "Content-Type": "application/json",
    }
    return requests.post(f"{base}/", json=envelope, headers=headers, timeout=30)


def _firestore_if_available(request: pytest.FixtureRequest) -> str | None:
    """The emulator when installed: the scheduler's tick reads Firestore before
    it answers. Without it every function still boots; the scheduler's request
    is then not sent (the robots.txt answer proves its import)."""
    try:
        host: str = request.getfixturevalue("firestore_host")
    except pytest.skip.Exception:
        return None
    return host


@pytest.fixture(scope="module")
def booted(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, Booted]]:
    firestore = _firestore_if_available(request)
    tmp = tmp_path_factory.mktemp("deploy-archive")
    workspace = _unpack_archive(tmp)
    venv = _buildpack_venv(tmp, workspace)
    servers: dict[str, Booted] = {}
    try:
        for name in FUNCTIONS:
            port = free_port()
            log = tmp / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(  # noqa: S603 - fixed argv
                    [str(venv / "bin" / "functions-framework")],
                    cwd=workspace,
                    env=_buildpack_env(venv, name, port, firestore),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            servers[name] = Booted(name, port, process, log, firestore)
        yield servers
    finally:
        for server in servers.values():
            stop_group(server.process.pid, grace=2)
            server.process.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_listening(server: Booted) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"{server.name} exited:\n{server.log.read_text()[-3000:]}")
        try:
            requests.get(f"http://127.0.0.1:{server.port}/robots.txt", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    pytest.fail(f"{server.name} did not listen:\n{server.log.read_text()[-3000:]}")


def test_shared_comes_from_the_installed_archive(booted: dict[str, Booted]) -> None:
    venv = next(iter(booted.values())).log.parent / "venv"
    found = subprocess.run(  # noqa: S603 - fixed argv
        # -P: not the cwd first on sys.path, as for the console script.
        [
            str(venv / "bin" / "python"),
            "-P",
            "-c",
            "import shared; print(shared.__file__)",
        ],
        cwd=venv.parent / "workspace",
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).is_relative_to(venv), found.stdout


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_boots_from_the_archive(name: str, booted: dict[str, Booted]) -> None:
    server = booted[name]
    _wait_listening(server)
    if name in NEEDS_FIRESTORE_TO_ANSWER and not server.firestore:
        print(f"{name}: listening (no Firestore emulator: request not sent)")
    else:
        response = _request(name, server.port)
        print(f"{name}: {_signature(name)} request answered {response.status_code}")
        if _signature(name) == "http":
            # Refused (401, 404) or handled (200): the function ran, no crash.
            assert response.status_code < 500, (response.status_code, log_of(server))
        else:
            # The handler ran and refused the poison message: a nack.
            assert response.status_code == 500
            assert "PoisonMessage" in log_of(server), log_of(server)
    log = log_of(server)
    assert "ModuleNotFoundError" not in log and "ImportError" not in log, log


def log_of(server: Booted) -> str:
    return server.log.read_text(encoding="utf-8", errors="replace")
