"""The eight Linux namespaces: what each isolates, its clone flag, its /proc name.

A namespace wraps one global resource so that the processes inside see their own
instance of it (namespaces(7)). A process's namespaces are the files in
``/proc/PID/ns``; two processes share a namespace when those files point to the
same inode.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable

from contain import linux


class Namespace(enum.Enum):
    """One kind of namespace: ``value`` is its name in /proc/PID/ns and on the CLI."""

    MNT = "mnt"
    UTS = "uts"
    IPC = "ipc"
    PID = "pid"
    NET = "net"
    USER = "user"
    CGROUP = "cgroup"
    TIME = "time"

    @property
    def flag(self) -> int:
        """The CLONE_NEW* flag for unshare(2), clone(2) and setns(2)."""
        return _FLAGS[self]

    @property
    def isolates(self) -> str:
        return _ISOLATES[self]

    @classmethod
    def parse(cls, name: str) -> Namespace:
        try:
            return cls(name.strip().lower())
        except ValueError:
            known = ", ".join(kind.value for kind in cls)
            raise ValueError(f"unknown namespace {name!r}: use one of {known}") from None


_FLAGS = {
    Namespace.MNT: linux.CLONE_NEWNS,  # the first namespace (2002), hence the odd name
    Namespace.UTS: linux.CLONE_NEWUTS,
    Namespace.IPC: linux.CLONE_NEWIPC,
    Namespace.PID: linux.CLONE_NEWPID,
    Namespace.NET: linux.CLONE_NEWNET,
    Namespace.USER: linux.CLONE_NEWUSER,
    Namespace.CGROUP: linux.CLONE_NEWCGROUP,
    Namespace.TIME: linux.CLONE_NEWTIME,
}

_ISOLATES = {
    Namespace.MNT: "mount points",
    Namespace.UTS: "hostname and NIS domain name",
    Namespace.IPC: "System V IPC objects and POSIX message queues",
    Namespace.PID: "process IDs",
    Namespace.NET: "network devices, addresses, routes, ports, firewall rules",
    Namespace.USER: "user and group IDs, capabilities",
    Namespace.CGROUP: "the view of the cgroup hierarchy (/proc/self/cgroup)",
    Namespace.TIME: "the boot-time and monotonic clocks",
}

# What `contain run` isolates by default; the user namespace is opt-in (--userns).
DEFAULT = frozenset({Namespace.MNT, Namespace.UTS, Namespace.IPC, Namespace.PID,
                     Namespace.NET, Namespace.CGROUP})


def flags(kinds: Iterable[Namespace]) -> int:
    """The combined CLONE_NEW* flags for ``kinds``."""
    result = 0
    for kind in kinds:
        result |= kind.flag
    return result


def identity(kind: Namespace, pid: int | str = "self") -> int:
    """The inode number that identifies the ``kind`` namespace of ``pid``."""
    return os.stat(f"/proc/{pid}/ns/{kind.value}").st_ino


def identities(pid: int | str = "self") -> dict[Namespace, int]:
    """All namespace identities of ``pid`` (what ``ls -l /proc/PID/ns`` shows)."""
    return {kind: identity(kind, pid) for kind in Namespace}
