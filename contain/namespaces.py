"""The eight Linux namespaces: what each isolates, its clone flag, its /proc name.

A namespace wraps one global resource so that the processes inside see their own
instance of it (namespaces(7)). A process's namespaces are the files in
``/proc/PID/ns``; two processes share a namespace when those files point to the
same inode.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from contain import linux


class NamespaceError(RuntimeError):
    """A namespace operation the kernel refused, with the reason and the fix in words."""


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


def parse_kinds(text: str) -> frozenset[Namespace]:
    """``"mnt,uts,pid"`` -> the set of kinds (the CLI's ``--namespaces``)."""
    names = [name for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError("--namespaces: give a comma-separated list, e.g. mnt,uts,ipc,pid,net")
    return frozenset(Namespace.parse(name) for name in names)


# --- unshare: new namespaces for the caller ----------------------------------------------
def unshare(kinds: Iterable[Namespace]) -> None:
    """Move the calling process into new namespaces of ``kinds`` (unshare(2)).

    Two of them do not move the caller at all: a new PID or time namespace is for the
    caller's *children* (the caller's PID and clocks cannot change under it), so fork
    afterwards. Call this in a single-threaded child (contain.process.call_in_child),
    never in a notebook kernel.
    """
    linux.unshare(flags(kinds))


# --- setns: joining another process's namespaces ------------------------------------------
# The order util-linux's nsenter uses. USER comes first: a container's other namespaces are
# owned by its user namespace, and joining it gives us the capabilities (CAP_SYS_ADMIN
# there) that setns(2) asks for to join the rest. MNT comes late because joining it also
# changes our root and working directory to the container's. PID and TIME come last and
# only apply to children we fork afterwards (like unshare).
JOIN_ORDER = (Namespace.USER, Namespace.CGROUP, Namespace.IPC, Namespace.UTS, Namespace.NET,
              Namespace.PID, Namespace.MNT, Namespace.TIME)


def open_namespaces(pid: int, kinds: Iterable[Namespace] = JOIN_ORDER) -> dict[Namespace, int]:
    """Open ``/proc/PID/ns/<kind>`` for each kind; the caller closes the fds.

    Open them all *before* joining any: once we are in the container's mount namespace,
    ``/proc/PID`` would be looked up in the container's /proc, where PID means something
    else (or nothing); and if the process dies meanwhile, an open fd keeps its namespace
    alive and valid.
    """
    if not os.path.isdir(f"/proc/{pid}"):
        raise ProcessLookupError(f"no process with PID {pid}: is the container still running?")
    fds: dict[Namespace, int] = {}
    try:
        for kind in kinds:
            fds[kind] = os.open(f"/proc/{pid}/ns/{kind.value}", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        _close_all(fds)
        raise ProcessLookupError(
            f"no process with PID {pid}: is the container still running?") from None
    except BaseException:
        _close_all(fds)
        raise
    return fds


def _close_all(fds: dict[Namespace, int]) -> None:
    for fd in fds.values():
        os.close(fd)


def enter(pid: int, kinds: Iterable[Namespace] | None = None) -> list[Namespace]:
    """Join the namespaces of process ``pid`` (setns(2)); returns the kinds joined.

    Kinds we already share are skipped: setns into one's own user namespace is an
    error (EINVAL), and joining a namespace we are in changes nothing. Only a
    single-threaded process may join a user or mount namespace, so call this in a fresh
    child (see :func:`nsenter`). After joining a PID namespace, fork: only children
    are born into it.
    """
    wanted = set(Namespace) if kinds is None else set(kinds)
    order = [kind for kind in JOIN_ORDER if kind in wanted]
    mine = identities()
    fds = open_namespaces(pid, order)
    joined = []
    try:
        theirs = {kind: os.fstat(fd).st_ino for kind, fd in fds.items()}
        for kind in order:
            if theirs[kind] != mine[kind]:
                linux.setns(fds[kind], kind.flag)  # the flag makes the kernel check the kind
                joined.append(kind)
    finally:
        _close_all(fds)
    if Namespace.USER in joined:
        become_root()
    return joined


join = enter


def become_root() -> None:
    """Switch to uid and gid 0 of the user namespace we are in (after unshare or setns).

    Entering a user namespace gives a process every capability there, but its uid stays
    the one it had outside, which the new namespace may not map (then it shows as 65534).
    execve(2) would recompute the capabilities from that uid and drop them all, so take
    uid 0 first, as ``nsenter --user`` does. setgroups(2) comes first: it is only allowed
    where /proc/PID/setgroups says "allow".
    """
    try:
        os.setgroups([])
    except PermissionError:
        pass  # setgroups is denied in this namespace: keep the groups we have
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


@dataclass
class Completed:
    """What :func:`nsenter` returns: the command's exit status and its output."""

    returncode: int
    stdout: str
    stderr: str


def nsenter(pid: int, argv: Sequence[str], kinds: Iterable[Namespace] | None = None,
            *, timeout: float = 30) -> Completed:
    """Run ``argv`` inside the namespaces of ``pid`` and return its status and output.

    ``nsenter --target PID --all`` in Python. The work happens in a fresh child, so it is
    safe to call from a Jupyter kernel: the child joins the namespaces (:func:`enter`),
    then starts the command with ``subprocess``, which forks once more, so the command
    is also inside the PID namespace.
    """
    import subprocess

    from contain.process import call_in_child

    argv = list(argv)
    kinds = None if kinds is None else frozenset(kinds)
    if not os.path.isdir(f"/proc/{pid}"):  # say so in the caller, not from a child
        raise ProcessLookupError(f"no process with PID {pid}: is the container still running?")

    def joined() -> Completed:
        enter(pid, kinds)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                                           "/sbin:/bin", "HOME": "/root"})
        return Completed(done.returncode, done.stdout, done.stderr)

    return call_in_child(joined)


# --- user namespaces: uid and gid maps ------------------------------------------------------
ID_LIMIT = 2**32 - 1  # (uid_t)-1 is "no id"
MAX_MAP_LINES = 340  # since Linux 4.15 (user_namespaces(7))
MAP_FORM = "'INSIDE OUTSIDE COUNT' (or INSIDE:OUTSIDE:COUNT), e.g. '0 100000 65536'"


@dataclass(frozen=True)
class IdMap:
    """One line of /proc/PID/uid_map or gid_map: ``count`` ids from ``inside`` on map to
    ids from ``outside`` on in the parent user namespace (user_namespaces(7))."""

    inside: int
    outside: int
    count: int

    @classmethod
    def parse(cls, line: str) -> IdMap:
        parts = line.replace(":", " ").split()
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"malformed id map {line.strip()!r}: use {MAP_FORM}")
        inside, outside, count = (int(p) for p in parts)
        if count == 0:
            raise ValueError(f"id map {line.strip()!r}: COUNT must be at least 1")
        if inside + count - 1 >= ID_LIMIT or outside + count - 1 >= ID_LIMIT:
            raise ValueError(f"id map {line.strip()!r}: the range ends beyond the largest "
                             f"id {ID_LIMIT - 1}")
        return cls(inside, outside, count)

    def __str__(self) -> str:
        return f"{self.inside} {self.outside} {self.count}"

    def to_outside(self, uid: int) -> int | None:
        """The id outside for ``uid`` inside, or None if this line does not map it."""
        if self.inside <= uid < self.inside + self.count:
            return self.outside + uid - self.inside
        return None


def parse_id_maps(text: str) -> list[IdMap]:
    """Several maps separated by newlines or commas; ranges must not overlap."""
    lines = [part for part in text.replace(",", "\n").splitlines() if part.strip()]
    if not lines:
        raise ValueError(f"empty id map: use {MAP_FORM}")
    maps = [IdMap.parse(line) for line in lines]
    check_id_maps(maps)
    return maps


def check_id_maps(maps: Sequence[IdMap]) -> None:
    """The kernel's rules, as clear errors instead of a bare EINVAL from the write."""
    if len(maps) > MAX_MAP_LINES:
        raise ValueError(f"{len(maps)} id map lines: the kernel accepts at most {MAX_MAP_LINES}")
    for side in ("inside", "outside"):
        ranges = sorted((getattr(m, side), getattr(m, side) + m.count) for m in maps)
        for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
            if start < end:
                raise ValueError(f"id maps overlap on the {side} side: each id may be mapped once")


def translate(uid: int, maps: Sequence[IdMap]) -> int | None:
    """What ``uid`` inside is outside (None: unmapped, shown as the overflow id 65534)."""
    for line in maps:
        outside = line.to_outside(uid)
        if outside is not None:
            return outside
    return None


# /etc/subuid is where a system lists the id ranges it hands out to user namespaces (useradd
# gives the first user 100000:65536; on the CI machine the file is empty). contain does not
# read it: it uses this fixed range, the usual first one (as Docker's --userns-remap and
# Podman do by convention): root inside is uid 100000 outside, and 65536 ids in all.
DEFAULT_ID_MAP = IdMap(0, 100000, 65536)
OVERFLOW_ID = 65534  # what an unmapped id looks like ("nobody", /proc/sys/kernel/overflowuid)


def write_id_maps(pid: int, uid_maps: Sequence[IdMap], gid_maps: Sequence[IdMap],
                  *, deny_setgroups: bool | None = None) -> None:
    """Write the uid and gid maps of process ``pid``'s new user namespace.

    Rules (user_namespaces(7)): each map can be written once, in one write(2); the writer
    must be in the parent user namespace (or the namespace itself) with CAP_SETUID /
    CAP_SETGID there; the mapped outside ids must be mapped in the writer's namespace.

    setgroups: since Linux 3.19 a writer *without* CAP_SETGID in the parent namespace
    (a rootless container) must write "deny" to /proc/PID/setgroups before gid_map.
    Otherwise the container's root could call setgroups(2) to *drop* a group, and so
    read files whose permissions deny that group on purpose (mode 0705, say). A
    privileged writer (root, as contain run is) may keep setgroups allowed, so that
    ``su``/``login`` inside keep working. ``deny_setgroups=None`` decides by that rule.
    """
    check_id_maps(uid_maps)
    check_id_maps(gid_maps)
    if deny_setgroups is None:
        deny_setgroups = os.geteuid() != 0
    if deny_setgroups:
        _write_proc(pid, "setgroups", "deny")
    _write_proc(pid, "uid_map", "".join(f"{m}\n" for m in uid_maps))
    _write_proc(pid, "gid_map", "".join(f"{m}\n" for m in gid_maps))


def _write_proc(pid: int, name: str, text: str) -> None:
    path = f"/proc/{pid}/{name}"
    try:
        with open(path, "w") as f:
            f.write(text)
    except FileNotFoundError:
        raise ProcessLookupError(f"no process with PID {pid}: it ended before {name} "
                                 "was written") from None
    except OSError as exc:
        raise NamespaceError(f"writing {text.strip()!r} to {path} failed: {exc.strerror} "
                             "(maps are write-once, and the outside ids must be mapped where "
                             "the writer is)") from None


# --- time namespaces: clock offsets ----------------------------------------------------------
@dataclass(frozen=True)
class TimeOffsets:
    """How far a time namespace's CLOCK_MONOTONIC and CLOCK_BOOTTIME are shifted (seconds)."""

    monotonic: int = 0
    boottime: int = 0

    @classmethod
    def parse(cls, text: str) -> TimeOffsets:
        """``"monotonic=3600,boottime=86400"`` (either may be left out)."""
        form = "use monotonic=SECONDS,boottime=SECONDS, e.g. boottime=86400"
        values: dict[str, int] = {}
        for item in (part.strip() for part in text.split(",")):
            name, sep, number = item.partition("=")
            if not sep or name not in ("monotonic", "boottime"):
                raise ValueError(f"time offset {item!r}: {form}")
            try:
                values[name] = int(number)
            except ValueError:
                raise ValueError(f"time offset {item!r}: SECONDS must be a whole number; "
                                 f"{form}") from None
        return cls(**values)


def set_time_offsets(offsets: TimeOffsets) -> None:
    """Write /proc/self/timens_offsets after unshare(CLONE_NEWTIME), before the first fork.

    unshare puts only our future children into the new time namespace; its clocks can be
    shifted only until the first process enters it (EACCES afterwards), so the caller
    writes them, then forks (time_namespaces(7)). A negative offset may not make a clock
    go below zero (EINVAL).
    """
    text = f"monotonic {offsets.monotonic} 0\nboottime {offsets.boottime} 0\n"
    try:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(text)
    except OSError as exc:
        raise NamespaceError(f"writing time offsets failed: {exc.strerror} (write them "
                             "after unshare(CLONE_NEWTIME) and before the first fork; an "
                             "offset may not take a clock below zero)") from None


# --- network namespaces: the loopback device ---------------------------------------------------
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    """Bring ``lo`` up in the caller's network namespace.

    A new network namespace has only a loopback device, and it is down, so even
    127.0.0.1 is unreachable. ``ip link set lo up`` is two ioctls on any socket:
    read the flags (SIOCGIFFLAGS), set them with IFF_UP (SIOCSIFFLAGS) (netdevice(7)).
    """
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)  # struct ifreq: name, then ifr_flags
        current = fcntl.ioctl(sock, SIOCGIFFLAGS, request)
        flags_now = struct.unpack("16sH22x", current)[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags_now | IFF_UP))


# --- describing processes: the explorer's data ------------------------------------------------
def shared(pids: Sequence[int | str]) -> dict[Namespace, bool]:
    """For each kind: do all of ``pids`` share that namespace?"""
    ids = [identities(pid) for pid in pids]
    return {kind: len({one[kind] for one in ids}) == 1 for kind in Namespace}


def shared_kinds(a: int | str, b: int | str) -> set[Namespace]:
    """The kinds of namespace two processes share."""
    return {kind for kind, same in shared([a, b]).items() if same}


def share_table(processes: dict[str, int]) -> list[tuple[str, dict[Namespace, bool]]]:
    """For each named process: which of its namespaces are the first process's?

    The first entry is the reference (usually the host); the table the explorer draws.
    """
    names = list(processes)
    reference_ids = identities(processes[names[0]])
    rows = []
    for name in names:
        mine = identities(processes[name])
        rows.append((name, {kind: mine[kind] == reference_ids[kind] for kind in Namespace}))
    return rows


def describe(pid: int | str = "self") -> str:
    """``ls -l /proc/PID/ns`` in words: one line per kind with its identity."""
    return "\n".join(f"{kind.value:<7} {os.readlink(f'/proc/{pid}/ns/{kind.value}'):<22} "
                     f"{kind.isolates}" for kind in Namespace)
