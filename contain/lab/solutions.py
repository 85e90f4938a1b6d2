"""Reference solutions for the exercises of chapters 0 and 1.

Each is registered with ``@reference("NN.name")`` and shown by ``lab.solution(...)``.
Later chapters put theirs in ``solutions_chNN.py`` (see contain/lab/exercises.py).
"""

from __future__ import annotations

import os
from typing import Literal

from contain.lab.exercises import reference


@reference("00.cgroup-version")
def cgroup_version(mountinfo: str) -> str:
    kinds = set()
    for line in mountinfo.splitlines():
        _, sep, after = line.partition(" - ")  # the optional fields end at " - "
        if sep and after.split()[0] in ("cgroup", "cgroup2"):
            kinds.add(after.split()[0])
    if kinds == {"cgroup", "cgroup2"}:
        return "hybrid"
    return {"cgroup": "v1", "cgroup2": "v2"}.get(kinds.pop(), "none") if kinds else "none"


@reference("01.pivot")
def pivot_into(new_root: str) -> None:
    from contain import linux

    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)  # no propagation
    linux.bind(new_root, new_root)  # pivot_root needs a mount point (EBUSY otherwise)
    os.chdir(new_root)
    linux.pivot_root(".", ".")  # the old root is now stacked on top of "."
    linux.umount(".", linux.MNT_DETACH)  # ...and gone
    os.chdir("/")


@reference("01.mountinfo")
def mount_points(text: str) -> list[str]:
    import re

    points = []
    for line in text.splitlines():
        field = line.split(" ")[4]
        # \040 is a space, \011 a tab, \012 a newline, \134 a backslash; every other
        # character is written as it is (so "unicode_escape" would garble an é)
        points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field))
    return points


@reference("01.static")
def is_static(path: str) -> bool:
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # not a 64-bit ELF file
            return False
        order: Literal["little", "big"] = "little" if header[5] == 1 else "big"
        phoff = int.from_bytes(header[32:40], order)  # where the program headers are
        size, count = int.from_bytes(header[54:56], order), int.from_bytes(header[56:58], order)
        f.seek(phoff)
        for _ in range(count):
            if int.from_bytes(f.read(size)[:4], order) == 3:  # PT_INTERP: needs a loader
                return False
    return True
