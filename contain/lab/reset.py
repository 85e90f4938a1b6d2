"""Undo what the notebooks made: ``lab.reset()`` — contain's own resources, nothing else.

Chapters 0-1 make only scratch directories, all named ``/tmp/contain-lab-*`` (see
:func:`workdir`); their children's mounts live in mount namespaces that die with them.
Later chapters add their own clean-up without editing this file: a module
``contain/lab/reset_chNN.py`` with a function ``reset() -> list[str]`` (what it
removed, one line each) is found next to this file and called, in name order.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

SCRATCH = Path("/tmp")
PREFIX = "contain-lab-"


def workdir(name: str) -> Path:
    """A fresh, empty scratch directory ``/tmp/contain-lab-NAME`` (same path every run)."""
    path = SCRATCH / f"{PREFIX}{name}"
    remove_tree(path)
    path.mkdir(mode=0o755)
    return path


def mounts_under(path: str | Path) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace, deepest first."""
    from contain import linux

    top = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = linux.unescape_mountinfo(line.split()[4])
            if point == top or point.startswith(top.rstrip("/") + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(path: str | Path) -> bool:
    """Unmount whatever is mounted below ``path``, then delete it. True if it existed."""
    from contain import linux

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return False
    for point in mounts_under(path):
        linux.umount(point, linux.MNT_DETACH)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return True


def reset_ch01() -> list[str]:
    removed = []
    for path in sorted(SCRATCH.glob(f"{PREFIX}*")):
        if remove_tree(path):
            removed.append(f"removed {path}")
    return removed


def _chapter_resets() -> list[str]:
    here = Path(__file__).parent
    return [f"contain.lab.{p.stem}" for p in sorted(here.glob("reset_ch*.py"))]


def reset(quiet: bool = False) -> list[str]:
    """Remove everything the course's notebooks made; print and return what was removed."""
    removed = reset_ch01()
    for module in _chapter_resets():
        removed += importlib.import_module(module).reset()
    if not quiet:
        print("\n".join(removed) if removed else "nothing to clean up")
    return removed
