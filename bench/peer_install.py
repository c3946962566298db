"""The peers' software, installed from their registries into a cache under /tmp.

node-oidc-provider comes from npm; Authlib with Flask, and django-oauth-toolkit
with Django, each get a virtualenv of their own from PyPI, with gunicorn to
serve them. Nothing of theirs enters the repository. Each install lives in
a folder named after its package list and the interpreter, so a run reuses
what an earlier run finished installing and a changed list installs afresh;
delete the cache folder to pick up new releases.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from processes import BenchError, run_command

CACHE = Path(tempfile.gettempdir()) / "netcalc-bench-peers"
"""Where the installs are kept between runs; outside the repository."""

INSTALL_SECONDS = 900.0
"""How long one npm or pip install may run."""

NODE_PACKAGES = ("oidc-provider@9",)
"""npm packages of the node-oidc-provider peer, by major version."""

AUTHLIB_PACKAGES = (
    "authlib>=1.6,<2",
    "flask>=3,<4",
    "sqlalchemy>=2,<3",
    "gunicorn>=27,<28",
)
"""PyPI packages of the Authlib peer."""

DOT_PACKAGES = ("django>=5.2,<6", "django-oauth-toolkit>=3,<4", "gunicorn>=27,<28")
"""PyPI packages of the django-oauth-toolkit peer."""

COMPLETE = ".complete"
"""The marker written once an install has finished."""


@dataclass(frozen=True)
class Installed:
    """Where each peer's software is, and the versions the report quotes."""

    node: str
    node_modules: Path
    authlib_python: Path
    dot_python: Path
    versions: dict[str, str]


def install() -> Installed:
    """Install whatever the cache lacks; the peers' software.

    Raises:
        BenchError: node or npm is missing, or an install failed.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise BenchError("The peers need node and npm; install the Debian 'nodejs'.")
    modules = _node_packages(npm)
    authlib = _virtualenv("authlib", AUTHLIB_PACKAGES)
    dot = _virtualenv("django-oauth-toolkit", DOT_PACKAGES)
    versions = {
        "node": run_command([node, "--version"], None, 30).strip().lstrip("v"),
        "oidc-provider": _npm_version(modules, "oidc-provider"),
        **_pip_versions(authlib, ("authlib", "flask", "sqlalchemy", "gunicorn")),
        **_pip_versions(dot, ("django", "django-oauth-toolkit", "gunicorn")),
    }
    return Installed(node, modules, authlib, dot, versions)


def _folder(name: str, packages: tuple[str, ...]) -> Path:
    key = json.dumps([sys.version, packages]).encode()
    return CACHE / f"{name}-{hashlib.sha256(key).hexdigest()[:12]}"


def _fresh(folder: Path) -> bool:
    """Whether `folder` holds a finished install; clear a half-made one."""
    if (folder / COMPLETE).exists():
        return True
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return False


def _node_packages(npm: str) -> Path:
    folder = _folder("oidc-provider", NODE_PACKAGES)
    if not _fresh(folder):
        print(
            f"Installing {', '.join(NODE_PACKAGES)} into {folder} ...", file=sys.stderr
        )
        (folder / "package.json").write_text('{"private": true}\n')
        command = [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund"]
        run_command([*command, *NODE_PACKAGES], None, INSTALL_SECONDS)
        (folder / COMPLETE).touch()
    return folder / "node_modules"


def _virtualenv(name: str, packages: tuple[str, ...]) -> Path:
    folder = _folder(name, packages)
    python = folder / "bin" / "python"
    if not _fresh(folder):
        print(f"Installing {', '.join(packages)} into {folder} ...", file=sys.stderr)
        # The interpreter behind this virtualenv, so every peer runs the same
        # Python as netcalc.
        base = getattr(sys, "_base_executable", sys.executable)
        run_command([base, "-m", "venv", str(folder)], None, INSTALL_SECONDS)
        pip = [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]
        run_command([*pip, *packages], None, INSTALL_SECONDS)
        (folder / COMPLETE).touch()
    return python


def _npm_version(modules: Path, package: str) -> str:
    manifest = json.loads((modules / package / "package.json").read_text())
    return str(manifest["version"])


def _pip_versions(python: Path, names: tuple[str, ...]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    found: dict[str, str] = json.loads(
        run_command([str(python), "-c", code, *names], None, 60)
    )
    return found


__all__ = ["CACHE", "Installed", "install"]
