"""Resource limits as users type them (``--cpus 0.5``, ``--memory 256m``...), parsed and checked.

Parsing happens before any cgroup exists, so a typo costs nothing: the user gets one line
naming the value and the accepted form, and the kernel is never touched. The units follow
``docker run`` (binary multiples: ``1k`` = 1024 bytes), because that is what learners type.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

CPU_PERIOD_US = 100_000  # the CFS period Docker and runc use: 100 ms
MIN_MEMORY = 6 << 20  # Docker refuses less: the runtime itself needs a few MiB
UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
# Every controller either version knows; anything else in --cgroup-conf is a typo.
# (The "cgroup." core files are not a controller's and are refused: see parse_cgroup_conf.)
CONTROLLERS = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "io", "blkio", "pids", "freezer", "devices",
    "hugetlb", "rdma", "misc", "net_cls", "net_prio", "perf_event",
})
# Files of one version that users bring from the other, and what to use instead
# (Documentation/admin-guide/cgroup-v1/*.rst vs cgroup-v2.rst).
V2_ONLY = {
    "cpu.max": "use cpu.cfs_quota_us / --cpus",
    "cpu.max.burst": "use cpu.cfs_burst_us",
    "cpu.weight": "use cpu.shares / --cpu-shares",
    "cpu.weight.nice": "use cpu.shares / --cpu-shares",
    "memory.max": "use memory.limit_in_bytes / --memory",
    "memory.high": "v1 has no memory.high: use memory.limit_in_bytes / --memory",
    "memory.low": "use memory.soft_limit_in_bytes",
    "memory.swap.max": "use memory.memsw.limit_in_bytes / --memory-swap",
    "io.max": "use blkio.throttle.read_bps_device / --device-read-bps, --device-write-bps",
    "io.weight": "use blkio.bfq.weight / --blkio-weight",
    "io.bfq.weight": "use blkio.bfq.weight / --blkio-weight",
}
V1_ONLY = {
    "cpu.cfs_quota_us": "use cpu.max / --cpus",
    "cpu.cfs_period_us": "use cpu.max / --cpus",
    "cpu.shares": "use cpu.weight / --cpu-shares",
    "memory.limit_in_bytes": "use memory.max / --memory",
    "memory.soft_limit_in_bytes": "use memory.low",
    "memory.memsw.limit_in_bytes": "use memory.swap.max / --memory-swap",
    "blkio.bfq.weight": "use io.bfq.weight / --blkio-weight",
    "blkio.throttle.read_bps_device": "use io.max / --device-read-bps",
    "blkio.throttle.write_bps_device": "use io.max / --device-write-bps",
}
V2_ONLY_CONTROLLERS = {"io": "use the blkio.* files"}
V1_ONLY_CONTROLLERS = {
    "blkio": "use the io.* files", "cpuacct": "read cpu.stat",
    "freezer": "v2 freezes with cgroup.freeze, which contain manages",
    "devices": "v2 has no devices files: device access is an eBPF program",
    "net_cls": "v2 has no net_cls: match cgroups in nftables",
    "net_prio": "v2 has no net_prio: match cgroups in nftables",
}


class LimitError(ValueError):
    """A limit the user typed that cannot work; the message names the value and the fix."""


@dataclass(frozen=True)
class DeviceRate:
    """A throttle on one block device, e.g. ``--device-read-bps /dev/vda:1m``."""

    path: str
    bytes_per_second: int
    option: str = "--device-read-bps"

    def device_number(self) -> str:
        """``MAJOR:MINOR`` of the device: the name both cgroup versions use for a disk."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise LimitError(f"{self.option} {self.path}: {exc.strerror}; give a block device "
                             "such as /dev/vda (see lsblk)") from None
        if not stat.S_ISBLK(st.st_mode):
            raise LimitError(f"{self.option} {self.path}: not a block device; give one such as "
                             "/dev/vda (see lsblk)")
        return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


@dataclass(frozen=True)
class Limits:
    """What a container may use. ``None`` means "no limit" (the kernel's default)."""

    cpus: float | None = None  # CPU time per wall time: 0.5 = half of one CPU
    cpu_shares: int | None = None  # relative weight, v1 style (2..262144, default 1024)
    cpu_weight: int | None = None  # relative weight, v2 style (1..10000, default 100)
    memory: int | None = None  # bytes of RAM (+ page cache) before the OOM killer acts
    memory_swap: int | None = None  # bytes of RAM + swap (Docker's meaning); -1 = unlimited
    pids_limit: int | None = None  # processes + threads
    blkio_weight: int | None = None  # relative I/O weight, 10..1000 (needs BFQ or io.cost)
    device_read_bps: tuple[DeviceRate, ...] = ()
    device_write_bps: tuple[DeviceRate, ...] = ()
    cpuset_cpus: str | None = None  # "0-1,3": the CPUs the container may run on
    cpuset_mems: str | None = None  # NUMA memory nodes
    cgroup_conf: tuple[tuple[str, str], ...] = field(default=())  # raw "memory.high"="64m"

    def cpu_quota_us(self) -> int | None:
        """``--cpus`` as CFS bandwidth: microseconds of CPU per CPU_PERIOD_US of wall time."""
        return None if self.cpus is None else round(self.cpus * CPU_PERIOD_US)


# --- parsing: one function per option ---------------------------------------------------
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?", re.IGNORECASE)
_CPU_LIST = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")


def parse_bytes(text: str, option: str = "--memory") -> int:
    """``"256m"`` -> 268435456. Units b, k, m, g, t (binary multiples), as ``docker run``."""
    match = _SIZE.fullmatch(text.strip())
    if text.strip().startswith("-"):
        raise LimitError(f"{option} {text}: must be a positive size; use a number with an "
                         "optional unit b, k, m or g (e.g. 256m)")
    if not match:
        raise LimitError(f"{option} {text}: not a size; use a number with an optional unit "
                         "b, k, m or g (e.g. 256m)")
    number, unit = match.group(1), match.group(2).lower()
    value = int(float(number) * UNITS[unit])
    if value <= 0:
        raise LimitError(f"{option} {text}: must be more than 0 bytes (e.g. 256m)")
    return value


def parse_cpus(text: str, online: int | None = None) -> float:
    """``"0.5"`` -> 0.5 CPUs; from 0.01 (the kernel's 1 ms minimum quota) to the CPU count."""
    online = online or os.cpu_count() or 1
    form = f"use a number of CPUs from 0.01 to {online} (e.g. 0.5)"
    try:
        cpus = float(text)
    except ValueError:
        raise LimitError(f"--cpus {text}: not a number; {form}") from None
    if not 0.01 <= cpus <= online:
        raise LimitError(f"--cpus {text}: out of range; {form}")
    return cpus


def parse_int(text: str, option: str, low: int, high: int, example: int) -> int:
    """A whole number in ``[low, high]``, or a LimitError naming the range."""
    form = f"use a whole number from {low} to {high} (e.g. {option} {example})"
    try:
        value = int(text)
    except ValueError:
        raise LimitError(f"{option} {text}: not a whole number; {form}") from None
    if not low <= value <= high:
        raise LimitError(f"{option} {text}: out of range; {form}")
    return value


def parse_memory_swap(text: str, memory: int | None) -> int:
    """Docker's ``--memory-swap``: the total of RAM + swap, at least ``--memory``; -1 = no limit."""
    if memory is None:
        raise LimitError(f"--memory-swap {text}: needs --memory too (memory-swap is the total "
                         "of memory and swap, e.g. --memory 256m --memory-swap 1g)")
    if text.strip() == "-1":
        return -1
    total = parse_bytes(text, "--memory-swap")
    if total < memory:
        raise LimitError(f"--memory-swap {text}: smaller than --memory ({mib(memory)}); it is "
                         "the total of memory and swap, so give at least the memory limit "
                         "(or -1 for unlimited swap)")
    return total


def parse_device_rate(text: str, option: str) -> DeviceRate:
    """``"/dev/vda:1m"`` -> DeviceRate("/dev/vda", 1048576)."""
    path, sep, rate = text.rpartition(":")
    if not sep or not path.startswith("/"):
        raise LimitError(f"{option} {text}: use DEVICE:RATE (e.g. {option} /dev/vda:1m)")
    return DeviceRate(path, parse_bytes(rate, option), option)


def parse_cpu_list(text: str, option: str = "--cpuset-cpus") -> str:
    """``"0-1,3"``: a kernel CPU list (cpuset(7) "List format")."""
    if not _CPU_LIST.fullmatch(text):
        raise LimitError(f"{option} {text}: use a list such as 0 or 0-1 or 0,2-3")
    for part in text.split(","):
        low, _, high = part.partition("-")
        if high and int(high) < int(low):
            raise LimitError(f"{option} {text}: the range {part} runs backwards; write "
                             f"{high}-{low}")
    return text


def parse_cgroup_conf(text: str) -> tuple[str, str]:
    """``"memory.high=64m"``: one raw cgroup file and its value (Podman's --cgroup-conf)."""
    key, sep, value = text.partition("=")
    controller, dot, name = key.partition(".")
    form = "use CONTROLLER.FILE=VALUE (e.g. --cgroup-conf memory.high=64m)"
    if "/" in key or ".." in key or "\0" in key:
        # The key is joined to the cgroup's directory: "../x" would write outside it.
        raise LimitError(f"--cgroup-conf {text}: a cgroup file name cannot contain '/' or "
                         f"'..'; {form}")
    if not sep or not dot or not name or not value or "\n" in value:
        raise LimitError(f"--cgroup-conf {text}: {form}")
    if controller == "cgroup":
        # cgroup.procs=PID would move any host process into the container's group (and
        # remove() SIGKILLs everything in it); cgroup.freeze, cgroup.kill, cgroup.max.* and
        # cgroup.subtree_control are contain's own business too (cgroups(7)).
        raise LimitError(f"--cgroup-conf {text}: the cgroup.* core files are managed by "
                         "contain (cgroup.procs would move host processes into the "
                         f"container); set a controller's file instead, {form}")
    if controller in ("devices", "freezer"):
        # devices.allow=a would open every host device (a raw disk, /dev/mem) to the
        # container: device access is security, chapter 8's business. freezer.state is
        # how contain itself freezes and kills a group.
        raise LimitError(f"--cgroup-conf {text}: the {controller} controller is managed by "
                         f"contain, not set by hand; {form}")
    if controller not in CONTROLLERS:
        known = ", ".join(sorted(CONTROLLERS))
        raise LimitError(f"--cgroup-conf {text}: unknown controller {controller!r}; "
                         f"use one of {known}")
    if _SIZE.fullmatch(value) and value[-1].isalpha():
        value = str(parse_bytes(value, "--cgroup-conf"))  # 64m -> 67108864
    return key, value


def parse_limits(
    *,
    cpus: str | None = None,
    cpu_shares: str | None = None,
    cpu_weight: str | None = None,
    memory: str | None = None,
    memory_swap: str | None = None,
    pids_limit: str | None = None,
    blkio_weight: str | None = None,
    device_read_bps: list[str] | tuple[str, ...] = (),
    device_write_bps: list[str] | tuple[str, ...] = (),
    cpuset_cpus: str | None = None,
    cpuset_mems: str | None = None,
    cgroup_conf: list[str] | tuple[str, ...] = (),
    online_cpus: int | None = None,
) -> Limits:
    """Turn the strings a user typed into Limits, or raise LimitError (one line)."""
    if cpu_shares is not None and cpu_weight is not None:
        raise LimitError("--cpu-shares and --cpu-weight set the same thing; give only one")
    mem = parse_bytes(memory, "--memory") if memory is not None else None
    if mem is not None and mem < MIN_MEMORY:
        raise LimitError(f"--memory {memory}: too small; give at least 6m")
    return Limits(
        cpus=parse_cpus(cpus, online_cpus) if cpus is not None else None,
        cpu_shares=(parse_int(cpu_shares, "--cpu-shares", 2, 262144, 512)
                    if cpu_shares is not None else None),
        cpu_weight=(parse_int(cpu_weight, "--cpu-weight", 1, 10000, 50)
                    if cpu_weight is not None else None),
        memory=mem,
        memory_swap=parse_memory_swap(memory_swap, mem) if memory_swap is not None else None,
        pids_limit=(parse_int(pids_limit, "--pids-limit", 1, 4194304, 64)
                    if pids_limit is not None else None),
        blkio_weight=(parse_int(blkio_weight, "--blkio-weight", 10, 1000, 500)
                      if blkio_weight is not None else None),
        device_read_bps=tuple(parse_device_rate(t, "--device-read-bps") for t in device_read_bps),
        device_write_bps=tuple(parse_device_rate(t, "--device-write-bps")
                               for t in device_write_bps),
        cpuset_cpus=parse_cpu_list(cpuset_cpus) if cpuset_cpus is not None else None,
        cpuset_mems=(parse_cpu_list(cpuset_mems, "--cpuset-mems")
                     if cpuset_mems is not None else None),
        cgroup_conf=tuple(parse_cgroup_conf(t) for t in cgroup_conf),
    )


# --- what only the host can tell: checked before a cgroup is made -----------------------
def online_list(path: str) -> set[int]:
    """The numbers in a kernel list file such as /sys/devices/system/cpu/online."""
    with open(path) as f:
        return expand_list(f.read().strip())


def expand_list(text: str) -> set[int]:
    """``"0-2,5"`` -> {0, 1, 2, 5}."""
    numbers: set[int] = set()
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        numbers.update(range(int(low), int(high or low) + 1))
    return numbers


def check_host(limits: Limits) -> None:
    """Refuse limits this machine cannot honour at all (missing CPUs, not a disk)."""
    _check_online("--cpuset-cpus", limits.cpuset_cpus, "/sys/devices/system/cpu/online",
                  "CPU", "CPUs ")
    _check_online("--cpuset-mems", limits.cpuset_mems, "/sys/devices/system/node/online",
                  "memory node", "")
    for rate in limits.device_read_bps + limits.device_write_bps:
        rate.device_number()


def _check_online(option: str, wanted: str | None, online_path: str, what: str,
                  plural: str) -> None:
    """Every CPU (or memory node) in ``wanted`` must be online on this machine."""
    if wanted is None:
        return
    online = online_list(online_path)
    missing = expand_list(wanted) - online
    if missing:
        raise LimitError(f"{option} {wanted}: no {what} {min(missing)} here; "
                         f"this machine has {plural}{_as_list(online)}")


def check_version(limits: Limits, version: int) -> None:
    """Refuse --cgroup-conf files of the other cgroup version, naming this host's equivalent.

    Without this, ``cpu.max`` on a v1 host fails at write time as "no such file", which
    reads like a broken kernel rather than a v1/v2 mix-up.
    """
    files, controllers = (V2_ONLY, V2_ONLY_CONTROLLERS) if version == 1 else \
        (V1_ONLY, V1_ONLY_CONTROLLERS)
    for key, value in limits.cgroup_conf:
        controller = key.partition(".")[0]
        instead = files.get(key) or controllers.get(controller)
        if instead is not None:
            raise LimitError(f"--cgroup-conf {key}={value}: {key} is a cgroup "
                             f"v{3 - version} file; this host uses cgroup v{version} "
                             f"({instead})")


def _as_list(numbers: set[int]) -> str:
    return ",".join(str(n) for n in sorted(numbers))


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares (2..262144) -> v2 cpu.weight (1..10000), the conversion runc uses."""
    return 1 + ((shares - 2) * 9999) // 262142


def weight_to_shares(weight: int) -> int:
    """v2 cpu.weight -> v1 cpu.shares (the inverse of :func:`shares_to_weight`)."""
    return 2 + ((weight - 1) * 262142) // 9999


def mib(n: int) -> str:
    """Bytes as a short human figure for messages: 33554432 -> '32 MiB'."""
    return f"{n / (1 << 20):g} MiB"
