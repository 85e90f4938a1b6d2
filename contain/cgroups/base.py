"""What both drivers share: the interface, the stats they report, careful file I/O."""

from __future__ import annotations

import errno
import os
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from contain.cgroups.hierarchy import CgroupError
from contain.cgroups.limits import Limits

PARENT = "contain"  # every container's cgroup is contain/<id>


@dataclass
class Stats:
    """One reading of a cgroup's counters, named the same on both versions."""

    version: int
    cpu_usage_usec: int = 0  # CPU time used by all its processes
    cpu_periods: int = 0  # CFS periods with a quota in force
    cpu_throttled_periods: int = 0  # ... in which it ran out of quota
    cpu_throttled_usec: int = 0  # time spent waiting for the next period
    memory_current: int = 0  # bytes charged now (RAM + page cache)
    memory_peak: int = 0  # the most ever charged
    memory_limit: int | None = None
    oom_kills: int = 0  # processes the OOM killer killed in this group
    pids_current: int = 0
    pids_limit: int | None = None
    pids_refused: int = 0  # forks refused because of pids.max
    io_read_bytes: int = 0
    io_write_bytes: int = 0
    frozen: bool = False
    psi: dict[str, dict[str, float]] | None = None  # v2 only: cpu/memory/io pressure

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Applied:
    """What apply() did: the files written and the limits that cannot work here."""

    writes: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def read_int(path: str, default: int = 0) -> int:
    """An integer file; "max" (v2's "no limit") and missing files give ``default``."""
    try:
        text = read(path)
    except FileNotFoundError:
        return default
    return default if text == "max" else int(text)


def write(path: str, value: str) -> None:
    """Write one value to a cgroup file, turning the kernel's errno into a sentence."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        raise CgroupError(f"{path} does not exist: this kernel lacks that setting") from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise CgroupError(f"writing {value!r} to {path}: {exc.strerror} "
                          f"({errno.errorcode.get(exc.errno or 0, '?')})") from exc
    finally:
        os.close(fd)


def flat_keyed(text: str) -> dict[str, int]:
    """``"key value"`` lines (cpu.stat, memory.events...) as a dict."""
    result: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            result[parts[0]] = int(parts[1])
    return result


def keyed_file(path: str) -> dict[str, int]:
    try:
        return flat_keyed(read(path))
    except FileNotFoundError:
        return {}


def rmdir_quietly(path: str) -> None:
    """Remove a parent directory if it is empty; another container may still use it."""
    try:
        os.rmdir(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
            raise


def rmdir_retrying(directory: str) -> None:
    """rmdir a cgroup; EBUSY while the last tasks are still exiting, so retry a little.

    A cgroup directory can be removed once no task is in it (rmdir(2) on cgroupfs: EBUSY
    otherwise); SIGKILLed tasks leave it asynchronously, a moment after kill(2) returns.
    """
    def gone() -> bool:
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return False
            raise
        return True

    wait_for(gone, f"{directory} to be removable")


def sigkill(pids: list[int]) -> None:
    """SIGKILL each of ``pids``; one that exited meanwhile is not an error."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def remove_after_failure(cgroup: Cgroup, error: BaseException) -> None:
    """Undo a half-made cgroup while ``error`` propagates, never hiding ``error``.

    If the clean-up fails too, the user still sees the first cause (the one to fix) and
    the clean-up failure is attached to it as a note (PEP 678), not raised in its place.
    """
    try:
        cgroup.remove()
    except Exception as cleanup:  # reported on the original error, not instead of it
        error.add_note(f"removing {cgroup.name} afterwards also failed: {cleanup}")


# --- facts about the host that decide whether a limit can work (both versions) ---------
def bfq_in_use() -> bool:
    """True if some disk schedules its I/O with BFQ, the only v1/v2 weight-based scheduler."""
    try:
        disks = os.listdir("/sys/block")
    except OSError:
        return False
    for disk in disks:
        try:
            if "[bfq]" in read(f"/sys/block/{disk}/queue/scheduler"):
                return True
        except OSError:
            continue
    return False


def swap_total() -> int:
    """Bytes of swap configured (/proc/swaps, one line per swap area after the header)."""
    with open("/proc/swaps") as f:
        return sum(int(line.split()[2]) * 1024 for line in list(f)[1:] if line.strip())


def host_warnings(limits: Limits, weight_works: bool) -> list[str]:
    """Limits that would be written but cannot take effect on this machine."""
    warnings = []
    if limits.blkio_weight is not None and not weight_works:
        warnings.append(f"--blkio-weight {limits.blkio_weight} has no effect here: no disk uses "
                        "the BFQ I/O scheduler (see /sys/block/*/queue/scheduler); use "
                        "--device-read-bps/--device-write-bps for a hard limit")
    if limits.memory_swap not in (None, -1) and swap_total() == 0:
        warnings.append("--memory-swap has no effect here: this machine has no swap "
                        "(see /proc/swaps), so the container gets --memory and no more")
    return warnings


def wait_for(condition: Any, what: str, timeout: float = 10.0) -> None:
    """Poll ``condition()`` until it is true (the kernel finishes kills asynchronously)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not condition():
        if time.monotonic() > deadline:
            raise CgroupError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class Cgroup(ABC):
    """One container's cgroup, whatever the version: the interface the runtime uses."""

    version: int

    def __init__(self, name: str) -> None:
        self.name = name.strip("/")  # e.g. "contain/3f2a9c1b7d4e"
        self.applied = Applied()  # what create() wrote, and the warnings for the user

    def __repr__(self) -> str:
        return f"<cgroup v{self.version} {self.name}>"

    @abstractmethod
    def create(self) -> None:
        """Make the directories (and, on v2, enable the controllers above them)."""

    @abstractmethod
    def apply(self, limits: Limits) -> Applied:
        """Write the limit files; report what cannot take effect on this host."""

    @abstractmethod
    def add(self, pid: int) -> None:
        """Move a process (and its future children) into this cgroup."""

    # Whether join_self() has a fast path on this driver (see CgroupV1.join_self).
    joins_self_cheaply = False

    def join_self(self) -> None:
        """Move the calling single-threaded process into this cgroup."""
        self.add(os.getpid())

    @abstractmethod
    def procs(self) -> list[int]:
        """PIDs in this cgroup."""

    @abstractmethod
    def stats(self) -> Stats:
        ...

    @abstractmethod
    def freeze(self) -> None:
        ...

    @abstractmethod
    def thaw(self) -> None:
        ...

    @abstractmethod
    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup and wait until it is empty."""

    def kill_frozen(self, pids: list[int]) -> None:
        """SIGKILL ``pids`` with the group frozen, so none of them can fork meanwhile.

        The thaw is in ``finally``: a frozen task cannot act on its SIGKILL, so a group
        left frozen (say the freeze timed out half-way) keeps its processes for ever and
        its rmdir fails with EBUSY for ever.
        """
        try:
            self.freeze()
            sigkill(pids)
        finally:
            self.thaw()

    @abstractmethod
    def remove(self) -> None:
        """Kill what is left, remove the directories (and ``contain/`` when empty)."""

    @abstractmethod
    def exists(self) -> bool:
        ...

    @abstractmethod
    def path(self, controller: str = "memory") -> str:
        """The directory of this cgroup that holds ``controller``'s files."""
