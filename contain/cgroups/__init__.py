"""Control groups: limit, measure, freeze and kill a container's processes as one.

One interface (:class:`Cgroup`), two drivers: :mod:`contain.cgroups.v1` for machines that
mount v1 controllers (v1 or hybrid, like the course's CI hosts) and
:mod:`contain.cgroups.v2` for the unified hierarchy (the learner VMs, every current
distribution). Which one runs is read from /proc/self/mountinfo, never assumed.

    limits = parse_limits(cpus="0.5", memory="256m")
    cg = create("contain/" + container_id, limits)   # before the container starts
    cg.add(pid)                                      # the container's first process
    cg.stats()                                       # CPU, memory, OOM kills, pids...
    cg.remove()                                      # kill what is left, rmdir

Only the standard library is imported here: ``contain run`` imports this on every start.
"""

from __future__ import annotations

from contain.cgroups.base import PARENT, Applied, Cgroup, Stats, remove_after_failure
from contain.cgroups.hierarchy import CgroupError, cgroup_of, layout, version
from contain.cgroups.limits import LimitError, Limits, check_host, check_version, parse_limits

__all__ = [
    "PARENT", "Applied", "Cgroup", "CgroupError", "Limits", "LimitError", "Stats",
    "cgroup_of", "container_cgroup", "create", "driver", "layout", "of_pid", "open_cgroup",
    "parse_limits", "version",
]


def driver(cgroup_version: int | None = None) -> type[Cgroup]:
    """The driver class for this machine (or for the version asked for)."""
    if (cgroup_version or version()) == 1:
        from contain.cgroups.v1 import CgroupV1

        return CgroupV1
    from contain.cgroups.v2 import CgroupV2

    return CgroupV2


def container_cgroup(container_id: str) -> str:
    """The cgroup name of a container: ``contain/<id>``."""
    return f"{PARENT}/{container_id}"


def create(name: str, limits: Limits | None = None) -> Cgroup:
    """Make cgroup ``name`` with ``limits`` applied; nothing is left behind on failure.

    The result's ``applied`` attribute lists the files written and ``warnings`` the limits
    that cannot take effect on this host (they are reported, never silently dropped).
    """
    limits = limits or Limits()
    check_host(limits)  # before mkdir: a missing CPU or disk costs nothing
    cls = driver()
    check_version(limits, cls.version)  # cpu.max on a v1 host: say so, before mkdir
    cg = cls(name)
    cg.create()
    try:
        cg.applied = cg.apply(limits)
    except BaseException as exc:
        remove_after_failure(cg, exc)  # the apply error stays the one the user sees
        raise
    return cg


def open_cgroup(name: str) -> Cgroup:
    """An existing cgroup, to read its stats or freeze it (it is not created)."""
    cg = driver()(name)
    if not cg.exists():
        raise CgroupError(f"no cgroup {name!r}")
    return cg


def of_pid(pid: int) -> Cgroup:
    """The cgroup a process is in (for v1, the one in the memory hierarchy)."""
    controller = "memory" if version() == 1 else None
    return open_cgroup(cgroup_of(pid, controller).strip("/"))
