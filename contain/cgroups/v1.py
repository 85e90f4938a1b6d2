"""The cgroup v1 driver: one directory per controller, each in its own hierarchy.

On v1 every controller is a separate tree (``/sys/fs/cgroup/memory``, ``.../cpu``...), so
a container's cgroup is really several directories, one per controller, all named
``contain/<id>``, and a process must be added to each. This is the layout the first
container courses were written for, and the reason their code broke on v2 machines.

The traps (cgroups(7), Documentation/admin-guide/cgroup-v1/):

* cpuset: a new group starts with empty ``cpuset.cpus`` and ``cpuset.mems``; adding a task
  fails with ENOSPC until both are set, so copy them from the parent.
* memory: ``memory.memsw.limit_in_bytes`` (memory + swap) must stay >= ``memory.limit_in_bytes``
  or the write fails with EINVAL: write the memory limit first.
* OOM kills are counted in ``memory.oom_control`` (``oom_kill N``); ``memory.failcnt`` stays 0
  once memsw is limited.
* there is no ``blkio.weight`` on current kernels, only ``blkio.bfq.weight``, which does
  nothing unless the disk uses the BFQ scheduler; blkio throttling limits direct I/O and
  fsync, not buffered writes (they are written back later by the kernel, outside the group).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from contain.cgroups import base
from contain.cgroups.base import PARENT, Applied, Cgroup, Stats, bfq_in_use, host_warnings
from contain.cgroups.hierarchy import V1_CONTROLLERS, CgroupError, v1_mounts
from contain.cgroups.limits import CPU_PERIOD_US, Limits, weight_to_shares

UNLIMITED = 1 << 62  # v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages)
REQUIRED = ("cpu", "memory", "pids")


def plan(limits: Limits) -> list[tuple[str, str, str]]:
    """The (controller, file, value) writes that set ``limits`` on v1, in a safe order."""
    writes: list[tuple[str, str, str]] = []
    quota = limits.cpu_quota_us()
    if quota is not None:
        writes += [("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US)),
                   ("cpu", "cpu.cfs_quota_us", str(quota))]
    if limits.cpu_shares is not None:
        writes.append(("cpu", "cpu.shares", str(limits.cpu_shares)))
    if limits.cpu_weight is not None:
        writes.append(("cpu", "cpu.shares", str(weight_to_shares(limits.cpu_weight))))
    if limits.cpuset_cpus is not None:
        writes.append(("cpuset", "cpuset.cpus", limits.cpuset_cpus))
    if limits.cpuset_mems is not None:
        writes.append(("cpuset", "cpuset.mems", limits.cpuset_mems))
    if limits.memory is not None:
        # memory first: memsw must never be below it (EINVAL).
        writes.append(("memory", "memory.limit_in_bytes", str(limits.memory)))
        swap = limits.memory_swap if limits.memory_swap is not None else 2 * limits.memory
        writes.append(("memory", "memory.memsw.limit_in_bytes", str(swap)))
    if limits.pids_limit is not None:
        writes.append(("pids", "pids.max", str(limits.pids_limit)))
    if limits.blkio_weight is not None:
        writes.append(("blkio", "blkio.bfq.weight", str(limits.blkio_weight)))
    for rate in limits.device_read_bps:
        writes.append(("blkio", "blkio.throttle.read_bps_device",
                       f"{rate.device_number()} {rate.bytes_per_second}"))
    for rate in limits.device_write_bps:
        writes.append(("blkio", "blkio.throttle.write_bps_device",
                       f"{rate.device_number()} {rate.bytes_per_second}"))
    for key, value in limits.cgroup_conf:
        writes.append((key.partition(".")[0], key, value))
    return writes


class CgroupV1(Cgroup):
    version = 1

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.mounts = v1_mounts()
        missing = [c for c in REQUIRED if c not in self.mounts]
        if missing:
            raise CgroupError(f"cgroup v1 controller(s) {', '.join(missing)} not mounted "
                              "(see /proc/self/mountinfo)")

    def path(self, controller: str = "memory") -> str:
        if controller not in self.mounts:
            hint = " (v1 calls it blkio)" if controller == "io" else ""
            raise CgroupError(f"controller {controller!r} is not mounted on this cgroup v1 "
                              f"machine{hint}")
        return os.path.join(self.mounts[controller], self.name)

    def _dirs(self) -> Iterator[tuple[str, str]]:
        """(controller, directory) once per hierarchy (co-mounted controllers share one)."""
        seen: set[str] = set()
        for controller in V1_CONTROLLERS:
            if controller in self.mounts and self.mounts[controller] not in seen:
                seen.add(self.mounts[controller])
                yield controller, self.path(controller)

    def exists(self) -> bool:
        return any(os.path.isdir(d) for _, d in self._dirs())

    def create(self) -> None:
        try:
            for controller, _directory in self._dirs():
                _mkdir_chain(self.mounts[controller], self.name, cpuset=controller == "cpuset")
        except BaseException as exc:
            base.remove_after_failure(self, exc)
            raise

    def apply(self, limits: Limits) -> Applied:
        applied = Applied()
        weight_works = False
        for controller, name, value in plan(limits):
            target = os.path.join(self.path(controller), name)
            if name == "blkio.bfq.weight":
                weight_works = os.path.exists(target) and bfq_in_use()
                if not weight_works:
                    continue
            if (name == "memory.memsw.limit_in_bytes" and limits.memory_swap is None
                    and not os.path.exists(target)):
                continue  # no swap accounting (swapaccount=0): nothing to limit
            base.write(target, value)
            applied.writes.append((target, value))
        applied.warnings = host_warnings(limits, weight_works)
        return applied

    def add(self, pid: int) -> None:
        for _, directory in self._dirs():
            base.write(os.path.join(directory, "cgroup.procs"), str(pid))

    joins_self_cheaply = True

    def join_self(self) -> None:
        """Move the caller, whose only thread is the one running this, into the group.

        Writing a PID to ``cgroup.procs`` takes the kernel's global
        cgroup_threadgroup_rwsem for writing, and that first waits for an RCU grace
        period: 5-25 ms here, the longest step of a container start. A thread moving
        *itself* through ``tasks`` ("0" means the caller) needs no global lock
        (cgroup_procs_write_start() in kernel/cgroup/cgroup.c): ~0.1 ms per hierarchy.
        For a single-threaded process, moving its one thread moves the process.
        cgroup v2 has no such file outside threaded subtrees.
        """
        for _, directory in self._dirs():
            base.write(os.path.join(directory, "tasks"), "0")

    def procs(self) -> list[int]:
        try:
            text = base.read(os.path.join(self.path("memory"), "cgroup.procs"))
        except FileNotFoundError:
            return []
        return [int(p) for p in text.split()]

    def stats(self) -> Stats:
        cpu, mem, pids = self.path("cpu"), self.path("memory"), self.path("pids")
        cpu_stat = base.keyed_file(os.path.join(cpu, "cpu.stat"))
        usage_ns = base.read_int(os.path.join(self.path("cpuacct"), "cpuacct.usage")) \
            if "cpuacct" in self.mounts else 0
        limit = base.read_int(os.path.join(mem, "memory.limit_in_bytes"))
        pids_max = base.read_int(os.path.join(pids, "pids.max"), default=-1)
        read_b, write_b = self._io_bytes()
        freezer = os.path.join(self.path("freezer"), "freezer.state") \
            if "freezer" in self.mounts else ""
        return Stats(
            version=1,
            cpu_usage_usec=usage_ns // 1000,
            cpu_periods=cpu_stat.get("nr_periods", 0),
            cpu_throttled_periods=cpu_stat.get("nr_throttled", 0),
            cpu_throttled_usec=cpu_stat.get("throttled_time", 0) // 1000,
            memory_current=base.read_int(os.path.join(mem, "memory.usage_in_bytes")),
            memory_peak=base.read_int(os.path.join(mem, "memory.max_usage_in_bytes")),
            memory_limit=None if limit >= UNLIMITED else limit,
            oom_kills=base.keyed_file(os.path.join(mem, "memory.oom_control")).get("oom_kill", 0),
            pids_current=base.read_int(os.path.join(pids, "pids.current")),
            pids_limit=None if pids_max < 0 else pids_max,
            pids_refused=base.keyed_file(os.path.join(pids, "pids.events")).get("max", 0),
            io_read_bytes=read_b,
            io_write_bytes=write_b,
            frozen=bool(freezer) and base.read(freezer) == "FROZEN",
        )

    def _io_bytes(self) -> tuple[int, int]:
        """Bytes read and written, from ``MAJ:MIN Read N`` lines of the throttle stats."""
        if "blkio" not in self.mounts:
            return 0, 0
        path = os.path.join(self.path("blkio"), "blkio.throttle.io_service_bytes_recursive")
        totals = {"Read": 0, "Write": 0}
        try:
            text = base.read(path)
        except FileNotFoundError:
            return 0, 0
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in totals:
                totals[parts[1]] += int(parts[2])
        return totals["Read"], totals["Write"]

    def freeze(self) -> None:
        state = os.path.join(self.path("freezer"), "freezer.state")
        base.write(state, "FROZEN")
        base.wait_for(lambda: base.read(state) == "FROZEN", f"{self.name} to freeze")

    def thaw(self) -> None:
        state = os.path.join(self.path("freezer"), "freezer.state")
        base.write(state, "THAWED")
        base.wait_for(lambda: base.read(state) == "THAWED", f"{self.name} to thaw")

    def kill_all(self) -> None:
        """v1 has no cgroup.kill: freeze (so nothing forks meanwhile), SIGKILL all, thaw."""
        if not self.exists():
            return
        for _ in range(100):
            pids = self.procs()
            if not pids:
                return
            if "freezer" in self.mounts and os.path.isdir(self.path("freezer")):
                self.kill_frozen(pids)  # thaws again, whatever happens
            else:
                base.sigkill(pids)
            try:
                base.wait_for(lambda: not self.procs(), f"{self.name} to empty", timeout=0.5)
            except CgroupError:
                continue
        raise CgroupError(f"could not empty {self.name}: processes keep appearing")

    def remove(self) -> None:
        self.kill_all()
        for controller, directory in self._dirs():
            base.rmdir_retrying(directory)
            base.rmdir_quietly(os.path.join(self.mounts[controller], PARENT))


def _mkdir_chain(mount: str, name: str, cpuset: bool) -> None:
    """mkdir each level of ``name`` under ``mount`` (races with a parent's removal retried)."""
    for _attempt in range(10):
        try:
            current = mount
            for part in name.split("/"):
                current = os.path.join(current, part)
                try:
                    os.mkdir(current)
                except FileExistsError:
                    pass
                if cpuset:
                    _inherit_cpuset(current)
            return
        except FileNotFoundError:  # a parent vanished under us: another container's rmdir
            continue
    raise CgroupError(f"could not create {name} under {mount}")


def _inherit_cpuset(directory: str) -> None:
    """Copy cpus and mems from the parent: a task cannot join an empty cpuset (ENOSPC)."""
    parent = os.path.dirname(directory)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not base.read(os.path.join(directory, name)):
            base.write(os.path.join(directory, name), base.read(os.path.join(parent, name)))
