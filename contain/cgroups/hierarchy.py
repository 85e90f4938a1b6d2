"""Which cgroup hierarchies this machine has, read from /proc/self/mountinfo.

Never hard-code /sys/fs/cgroup/memory: distributions mount v1 controllers separately or
together ("cpu,cpuacct"), and pure v2 machines have a single unified tree. The mount table
says what is really there (proc(5), "/proc/pid/mountinfo").

=========  =====================================================  ==========================
layout     what /proc/self/mountinfo shows                        contain uses
=========  =====================================================  ==========================
v1         one ``cgroup`` mount per controller (or group of them)  the v1 driver
hybrid     v1 mounts + a ``cgroup2`` mount without controllers     the v1 driver
v2         one ``cgroup2`` mount, controllers in cgroup.controllers the v2 driver
=========  =====================================================  ==========================
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from contain.linux import unescape_mountinfo as _unescape

# The v1 controllers a container gets a directory in (devices: chapter 8).
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "freezer")
KNOWN_V1 = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio",
    "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc",
})


class CgroupError(RuntimeError):
    """The kernel refused a cgroup operation; the message says which file and why."""


@dataclass(frozen=True)
class Mount:
    mount_point: str
    root: str  # the cgroup this mount shows as its top (not "/" inside a cgroup namespace)
    fstype: str  # "cgroup" (v1) or "cgroup2"
    controllers: frozenset[str]  # v1: from the mount options; v2: from cgroup.controllers


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """Every cgroup and cgroup2 mount, in mount order."""
    found: list[Mount] = []
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, (fstype, _source, options) = left.split(), right.split()[:3]
            if fstype == "cgroup":
                controllers = frozenset(options.split(",")) & KNOWN_V1
            elif fstype == "cgroup2":
                controllers = _v2_controllers(_unescape(fields[4]))
            else:
                continue
            found.append(Mount(_unescape(fields[4]), _unescape(fields[3]), fstype, controllers))
    return found


def _v2_controllers(mount_point: str) -> frozenset[str]:
    try:
        with open(os.path.join(mount_point, "cgroup.controllers")) as f:
            return frozenset(f.read().split())
    except OSError:
        return frozenset()


def v1_mounts() -> dict[str, str]:
    """v1 controller -> mount point (co-mounted controllers share one)."""
    table: dict[str, str] = {}
    for m in mounts():
        if m.fstype == "cgroup":
            for c in m.controllers:
                table.setdefault(c, m.mount_point)
    return table


def v2_mount() -> str | None:
    """Mount point of the unified (v2) hierarchy, if there is one."""
    for m in mounts():
        if m.fstype == "cgroup2":
            return m.mount_point
    return None


def version() -> int:
    """1 if v1 controllers are mounted (v1 or hybrid), 2 if only the unified tree is."""
    if {"cpu", "memory", "pids"} & v1_mounts().keys():
        return 1
    if v2_mount() is not None:
        return 2
    raise CgroupError("no cgroup hierarchy is mounted (see /proc/self/mountinfo); "
                      "mount cgroup2 at /sys/fs/cgroup")


def layout() -> str:
    """"v1", "hybrid" or "v2": how this machine mounts its cgroups."""
    has_v1 = bool(v1_mounts())
    has_v2 = v2_mount() is not None
    return "hybrid" if has_v1 and has_v2 else "v1" if has_v1 else "v2"


def cgroup_of(pid: int | str, controller: str | None = None) -> str:
    """The cgroup of ``pid`` (a path relative to the hierarchy's root) from /proc/PID/cgroup.

    Each line is ``ID:CONTROLLERS:PATH``; v1 lines list their controllers, the v2 line is
    ``0::PATH``. ``controller=None`` asks for the v2 line (cgroups(7)).
    """
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _id, names, path = line.rstrip("\n").split(":", 2)
            if controller is None and names == "":
                return path
            if controller is not None and controller in names.split(","):
                return path
    raise CgroupError(f"process {pid} is in no {controller or 'v2'} cgroup")
