"""What both drivers share: the interface, the stats they report, careful file I/O."""

from __future__ import annotations

import errno
import os
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

    @abstractmethod
    def remove(self) -> None:
        """Kill what is left, remove the directories (and ``contain/`` when empty)."""

    @abstractmethod
    def exists(self) -> bool:
        ...

    @abstractmethod
    def path(self, controller: str = "memory") -> str:
        """The directory of this cgroup that holds ``controller``'s files."""
