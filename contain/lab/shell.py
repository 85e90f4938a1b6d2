"""Run a shell command from a notebook cell and see what it printed.

``sh("contain run /bin/hostname")`` runs the ``contain`` CLI of *this* interpreter
(``sys.executable -m contain``), so a notebook always uses the package it imports,
whatever ``contain`` on PATH may be. The CLI runs as a fresh process: the notebook
kernel's namespaces, root and cgroup are never touched.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]  # the directory that holds the package


class Output(str):
    """What the command printed (stdout and stderr, interleaved), plus its exit status."""

    returncode: int

    def __new__(cls, text: str, returncode: int) -> Output:
        self = super().__new__(cls, text)
        self.returncode = returncode
        return self


class CommandFailed(RuntimeError):
    """A command run with ``check=True`` exited non-zero."""


def resolve(cmd: str) -> str:
    """Replace a leading ``contain`` with this interpreter's ``python -m contain``."""
    if cmd == "contain" or cmd.startswith("contain "):
        return f"{shlex.quote(sys.executable)} -m contain{cmd[len('contain'):]}"
    return cmd


def env() -> dict[str, str]:
    """The environment for a ``contain`` subprocess: this package first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def popen(*args: str, **kwargs: Any) -> subprocess.Popen[Any]:
    """Start ``contain ARGS...`` in the background (for a container you watch while it runs)."""
    return subprocess.Popen([sys.executable, "-m", "contain", *args], env=env(), **kwargs)


def sh(cmd: str, check: bool = True, quiet: bool = False, timeout: float = 120) -> Output:
    """Run ``cmd`` with /bin/sh, print its output, and return it.

    ``check=True`` raises :class:`CommandFailed` (with the output) on a non-zero exit;
    with ``check=False`` a non-zero status is printed as ``[exit status N]``.
    """
    done = subprocess.run(
        resolve(cmd), shell=True, env=env(), text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    out = Output(done.stdout, done.returncode)
    if not quiet:
        print(out, end="" if out.endswith("\n") or not out else "\n")
        if done.returncode and not check:
            print(f"[exit status {done.returncode}]")
    if check and done.returncode:
        raise CommandFailed(f"{cmd!r} exited with status {done.returncode}:\n{out}")
    return out
