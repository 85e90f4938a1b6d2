"""Chapter 3 helpers: sample a running container's cgroup, and plot it while it runs.

The notebook starts ``contain run`` as a subprocess (the kernel never joins a cgroup
itself) and reads the container's cgroup files from outside, like ``docker stats``.
matplotlib and IPython are imported only when a plot is made.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from contain import cgroups
from contain.cgroups import Cgroup, CgroupError, Stats

T = TypeVar("T")


def wait_for_cgroup(container_id: str, proc: subprocess.Popen[Any],
                    timeout: float = 60) -> Cgroup:
    """The cgroup of a container that ``proc`` (a ``contain run``) is starting."""
    name = cgroups.container_cgroup(container_id)

    def populated() -> Cgroup | None:
        try:
            cg = cgroups.open_cgroup(name)
        except CgroupError:
            return None
        return cg if cg.procs() else None

    return _poll(populated, proc, f"its cgroup {name} could be read", timeout)


def wait_for_pid_file(path: str | Path, proc: subprocess.Popen[Any],
                      timeout: float = 60) -> int:
    """The host PID that ``contain run --pid-file PATH`` (``proc``) writes once PID 1 runs."""
    path = Path(path)

    def written() -> int | None:
        try:
            return int(path.read_text())
        except (FileNotFoundError, ValueError):  # not written yet, or half-written
            return None

    return _poll(written, proc, f"it wrote {path}", timeout)


def _poll(probe: Callable[[], T | None], proc: subprocess.Popen[Any], what: str,
          timeout: float) -> T:
    """Call ``probe`` until it gives a value; fail if ``proc`` ends first, or on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        if proc.poll() is not None:
            raise RuntimeError(f"the container ended before {what} "
                               f"(exit status {proc.returncode})")
        time.sleep(0.01)
    raise TimeoutError(f"{timeout} s passed before {what}")


def parent_of(pid: int) -> int:
    """The parent PID of ``pid``, from the ``PPid:`` line of /proc/PID/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    raise LookupError(f"no PPid line in /proc/{pid}/status")


def sample(container_id: str, proc: subprocess.Popen[Any], every: float = 0.2,
           limit: float = 60) -> Iterator[tuple[float, Stats]]:
    """(seconds since the first sample, stats) while the container runs (``limit`` s at most)."""
    cg = wait_for_cgroup(container_id, proc)
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < limit:
        try:
            stats = cg.stats()
        except (OSError, CgroupError, ValueError):  # removed while we read it
            break
        if not cg.exists() or (stats.pids_current == 0 and stats.cpu_usage_usec == 0):
            break
        yield time.monotonic() - t0, stats
        time.sleep(every)


@dataclass
class LivePlot:
    """A line plot redrawn in place while data arrives (an IPython display handle)."""

    title: str
    ylabel: str
    limit: float | None = None  # drawn as a dashed line
    limit_label: str = "limit"
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    _handle: Any = None
    _fig: Any = None

    def add(self, x: float, y: float, redraw_every: int = 3) -> None:
        self.xs.append(x)
        self.ys.append(y)
        if len(self.xs) % redraw_every == 0:
            self.draw()

    def draw(self) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        if self._fig is None:
            self._fig, _ = plt.subplots(figsize=(7, 3))
        ax = self._fig.axes[0]
        ax.clear()
        ax.plot(self.xs, self.ys, marker=".", label="measured")
        if self.limit is not None:
            ax.axhline(self.limit, linestyle="--", color="red", label=self.limit_label)
        ax.set_title(self.title)
        ax.set_xlabel("seconds")
        ax.set_ylabel(self.ylabel)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left")
        self._fig.tight_layout()
        if self._handle is None:
            self._handle = display(self._fig, display_id=True)  # type: ignore[no-untyped-call]
        else:
            self._handle.update(self._fig)

    def finish(self) -> None:
        """Draw the final figure and release it (so it is not shown twice)."""
        self.draw()
        import matplotlib.pyplot as plt

        plt.close(self._fig)


def disk_of(path: str | Path) -> str:
    """The /dev node of the whole disk holding ``path`` (I/O throttles name disks)."""
    st = os.stat(path)
    sys_dir = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if not sys_dir.exists():
        raise RuntimeError(f"{path} is not on a block device (tmpfs? overlay? 9p?)")
    if (sys_dir / "partition").exists():  # sda1 -> sda: throttles apply to whole disks
        sys_dir = sys_dir.resolve().parent
    uevent = dict(line.split("=", 1) for line in (sys_dir / "uevent").read_text().split())
    return f"/dev/{uevent['DEVNAME']}"
