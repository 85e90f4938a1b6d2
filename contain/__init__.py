"""contain: a container runtime built chapter by chapter.

Submodules are imported on first use, so ``import contain`` (and the ``contain``
command) stay fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

__version__ = "0.1.0"


def run(
    command: Sequence[str], *, check: bool = False, timeout: float | None = None,
    **options: object,
) -> subprocess.CompletedProcess[str]:
    """Run a container from Python: ``contain.run(["hostname"], hostname="box", rm=True)``.

    The same code path as the ``contain run`` command, because it *is* that command,
    started as a fresh process: a container's namespaces can only be created by a
    single-threaded process, and a Jupyter kernel runs a dozen threads. Each keyword
    becomes an option (``memory="32m"`` → ``--memory 32m``, ``rm=True`` → ``--rm``,
    a list repeats the option). Returns the finished process with its output.
    """
    import subprocess

    argv = [sys.executable, "-m", "contain", "run"]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is True:
                argv.append(flag)
            elif item not in (False, None):
                argv += [flag, os.fspath(item) if isinstance(item, os.PathLike) else str(item)]
    argv += ["--", *command]
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)
