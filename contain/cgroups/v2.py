"""The cgroup v2 driver: one unified tree, one directory per container.

On v2 (cgroups(7), Documentation/admin-guide/cgroup-v2.rst) a cgroup is one directory
holding every controller's files, but a controller's files only appear in a child once
the parent lists the controller in its ``cgroup.subtree_control``. This is the trap
learners fell into when they "ported" v1 code: writing ``memory.max`` fails (the file is
not there) or, worse, they wrote to a group whose limits nobody enforced. So:

1. enable ``+cpu +memory ...`` in the root's ``cgroup.subtree_control`` (for ``contain/``),
2. make ``contain/`` and enable the same in ``contain/cgroup.subtree_control``,
3. make ``contain/<id>`` and write its limits.

"No internal processes": a group that enables controllers for its children may not hold
processes itself (the root is exempt), so ``contain/`` never holds any; only the leaves do.
"""

from __future__ import annotations

import os

from contain.cgroups import base
from contain.cgroups.base import PARENT, Applied, Cgroup, Stats, bfq_in_use, host_warnings
from contain.cgroups.hierarchy import CgroupError, v2_mount
from contain.cgroups.limits import CPU_PERIOD_US, Limits, shares_to_weight

WANTED = ("cpu", "cpuset", "io", "memory", "pids")


def plan(limits: Limits) -> list[tuple[str, str]]:
    """The (file, value) writes that set ``limits`` on v2."""
    writes: list[tuple[str, str]] = []
    quota = limits.cpu_quota_us()
    if quota is not None:
        writes.append(("cpu.max", f"{quota} {CPU_PERIOD_US}"))
    if limits.cpu_shares is not None:
        writes.append(("cpu.weight", str(shares_to_weight(limits.cpu_shares))))
    if limits.cpu_weight is not None:
        writes.append(("cpu.weight", str(limits.cpu_weight)))
    if limits.cpuset_cpus is not None:
        writes.append(("cpuset.cpus", limits.cpuset_cpus))
    if limits.cpuset_mems is not None:
        writes.append(("cpuset.mems", limits.cpuset_mems))
    if limits.memory is not None:
        writes.append(("memory.max", str(limits.memory)))
        # v2 limits swap alone; Docker's --memory-swap is memory + swap.
        total = limits.memory_swap if limits.memory_swap is not None else 2 * limits.memory
        writes.append(("memory.swap.max", "max" if total == -1 else str(total - limits.memory)))
    if limits.pids_limit is not None:
        writes.append(("pids.max", str(limits.pids_limit)))
    if limits.blkio_weight is not None:
        writes.append(("io.bfq.weight", str(limits.blkio_weight)))
    devices: dict[str, list[str]] = {}
    for rate in limits.device_read_bps:
        devices.setdefault(rate.device_number(), []).append(f"rbps={rate.bytes_per_second}")
    for rate in limits.device_write_bps:
        devices.setdefault(rate.device_number(), []).append(f"wbps={rate.bytes_per_second}")
    for device, settings in devices.items():
        writes.append(("io.max", f"{device} {' '.join(settings)}"))
    writes += list(limits.cgroup_conf)
    return writes


def parse_pressure(text: str) -> dict[str, float]:
    """``some avg10=0.12 avg60=... total=N`` lines -> {"some_avg10": 0.12, ...} (PSI)."""
    result: dict[str, float] = {}
    for line in text.splitlines():
        kind, *pairs = line.split()
        for pair in pairs:
            key, _, value = pair.partition("=")
            result[f"{kind}_{key}"] = float(value)
    return result


class CgroupV2(Cgroup):
    version = 2

    def __init__(self, name: str) -> None:
        super().__init__(name)
        mount = v2_mount()
        if mount is None:
            raise CgroupError("no cgroup2 hierarchy is mounted (see /proc/self/mountinfo)")
        self.mount = mount
        self.dir = os.path.join(mount, self.name)

    def path(self, controller: str = "memory") -> str:
        return self.dir

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def _file(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def create(self) -> None:
        try:
            self._create()
        except BaseException as exc:
            base.remove_after_failure(self, exc)
            raise

    def _create(self) -> None:
        for _attempt in range(10):
            try:
                current = self.mount
                for part in self.name.split("/"):
                    enable_controllers(current)  # in the parent, before the child exists
                    current = os.path.join(current, part)
                    try:
                        os.mkdir(current)
                    except FileExistsError:
                        pass
                return
            except FileNotFoundError:  # a parent vanished under us: another container's rmdir
                continue
        raise CgroupError(f"could not create {self.dir}")

    def apply(self, limits: Limits) -> Applied:
        applied = Applied()
        weight_works = False
        for name, value in plan(limits):
            target = self._file(name)
            if name == "io.bfq.weight":
                name, value, weight_works = self._io_weight(limits.blkio_weight or 0)
                if not weight_works:
                    continue
                target = self._file(name)
            if name == "memory.swap.max" and limits.memory_swap is None \
                    and not os.path.exists(target):
                continue  # no swap accounting: nothing to limit
            base.write(target, value)
            applied.writes.append((target, value))
        applied.warnings = host_warnings(limits, weight_works)
        return applied

    def _io_weight(self, weight: int) -> tuple[str, str, bool]:
        """io.bfq.weight if a disk uses BFQ, else io.weight if io.cost is on, else nothing."""
        if os.path.exists(self._file("io.bfq.weight")) and bfq_in_use():
            return "io.bfq.weight", str(weight), True
        qos = os.path.join(self.mount, "io.cost.qos")
        if os.path.exists(qos) and "enable=1" in base.read(qos):
            return "io.weight", str(1 + (weight - 10) * 9999 // 990), True
        return "io.weight", "", False

    def add(self, pid: int) -> None:
        base.write(self._file("cgroup.procs"), str(pid))

    def procs(self) -> list[int]:
        try:
            return [int(p) for p in base.read(self._file("cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def stats(self) -> Stats:
        cpu = base.keyed_file(self._file("cpu.stat"))
        limit = base.read_int(self._file("memory.max"), default=-1)
        pids_max = base.read_int(self._file("pids.max"), default=-1)
        read_b = write_b = 0
        try:
            for line in base.read(self._file("io.stat")).splitlines():
                for pair in line.split()[1:]:
                    key, _, value = pair.partition("=")
                    read_b += int(value) if key == "rbytes" else 0
                    write_b += int(value) if key == "wbytes" else 0
        except FileNotFoundError:
            pass
        psi = {}
        for resource in ("cpu", "memory", "io"):
            try:
                psi[resource] = parse_pressure(base.read(self._file(f"{resource}.pressure")))
            except (FileNotFoundError, OSError):
                continue
        events = base.keyed_file(self._file("cgroup.events"))
        return Stats(
            version=2,
            cpu_usage_usec=cpu.get("usage_usec", 0),
            cpu_periods=cpu.get("nr_periods", 0),
            cpu_throttled_periods=cpu.get("nr_throttled", 0),
            cpu_throttled_usec=cpu.get("throttled_usec", 0),
            memory_current=base.read_int(self._file("memory.current")),
            memory_peak=base.read_int(self._file("memory.peak")),
            memory_limit=None if limit < 0 else limit,
            oom_kills=base.keyed_file(self._file("memory.events")).get("oom_kill", 0),
            pids_current=base.read_int(self._file("pids.current")),
            pids_limit=None if pids_max < 0 else pids_max,
            pids_refused=base.keyed_file(self._file("pids.events")).get("max", 0),
            io_read_bytes=read_b,
            io_write_bytes=write_b,
            frozen=events.get("frozen", 0) == 1,
            psi=psi,
        )

    def freeze(self) -> None:
        base.write(self._file("cgroup.freeze"), "1")
        base.wait_for(lambda: self._event("frozen") == 1, f"{self.name} to freeze")

    def thaw(self) -> None:
        base.write(self._file("cgroup.freeze"), "0")
        base.wait_for(lambda: self._event("frozen") == 0, f"{self.name} to thaw")

    def _event(self, key: str) -> int:
        return base.keyed_file(self._file("cgroup.events")).get(key, 0)

    def kill_all(self) -> None:
        """cgroup.kill (Linux 5.14) SIGKILLs the whole subtree at once, forks included."""
        if not self.exists():
            return
        if os.path.exists(self._file("cgroup.kill")):
            base.write(self._file("cgroup.kill"), "1")
        else:  # older kernels: freeze so nothing forks, SIGKILL each, thaw (always)
            self.kill_frozen(self.procs())
        base.wait_for(lambda: self._event("populated") == 0, f"{self.name} to empty")

    def remove(self) -> None:
        if self.exists():
            self.kill_all()
            base.rmdir_retrying(self.dir)
        base.rmdir_quietly(os.path.join(self.mount, PARENT))


def enable_controllers(directory: str) -> None:
    """Enable WANTED controllers for the children of ``directory`` (its subtree_control).

    Only controllers the directory itself has (``cgroup.controllers``) can be enabled.
    """
    available = set(base.read(os.path.join(directory, "cgroup.controllers")).split())
    control = os.path.join(directory, "cgroup.subtree_control")
    enabled = set(base.read(control).split())
    for controller in WANTED:
        if controller in available and controller not in enabled:
            try:
                base.write(control, f"+{controller}")
            except CgroupError as exc:
                raise CgroupError(f"cannot enable the {controller} controller in {control}: "
                                  f"{exc} (a cgroup with processes cannot enable "
                                  "controllers for children: the no-internal-processes "
                                  "rule)") from None
