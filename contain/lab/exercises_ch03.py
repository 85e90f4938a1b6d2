"""Chapter 3's exercises: sizes as users type them, CPU bandwidth files, finding a cgroup.

The checks work against the real kernel: the CPU answer is written into a scratch cgroup
(and must read back as the kernel would store it), and the cgroup a process is in is
looked up for a real process placed in a scratch cgroup. Both are removed afterwards,
also when the answer is wrong.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from contain.lab.exercises import exercise

SIZES = [
    ("256m", 256 << 20), ("1g", 1 << 30), ("512k", 512 << 10), ("4096", 4096),
    ("100b", 100), ("64M", 64 << 20), ("2G", 2 << 30), ("1.5g", 3 << 29), ("32mb", 32 << 20),
]
BAD_SIZES = ["12qb", "-1", "", "m", "0", "1.2.3m", "ten"]


@exercise("03.parse-memory",
          hint="split the text into a number and an optional unit: how many bytes is one k, "
               "one m, one g? Then try your function on the failing example in the message, "
               "and on '0', '-1' and '12qb': which of them should raise ValueError?")
def check_parse_memory(fn: Callable[[str], int]) -> None:
    """Write parse_memory(text): '256m' -> 268435456 bytes, ValueError for nonsense."""
    for text, expected in SIZES:
        got = fn(text)
        assert got == expected, f"parse_memory({text!r}) returned {got!r}, expected {expected}"
    for text in BAD_SIZES:
        try:
            got = fn(text)
        except ValueError:
            continue
        raise AssertionError(f"parse_memory({text!r}) returned {got!r}; it should raise "
                             "ValueError (a size the user must correct)")


def _scratch_cgroup(tag: str):  # type: ignore[no-untyped-def]
    from contain import cgroups

    return cgroups.create(cgroups.container_cgroup(f"check-{tag}-{os.getpid()}"))


@exercise("03.cpu-max",
          hint="--cpus says how much of each CFS period the group may run: look at what "
               "section 3 printed for --cpus 0.5 on both versions (one file on v2, two on "
               "v1), and at the period contain uses (contain.cgroups.limits.CPU_PERIOD_US)")
def check_cpu_max(fn: Callable[[float], dict[str, str]]) -> None:
    """Write cpu_files(cpus): the v2 cpu.max line and the v1 CFS files for --cpus."""
    from contain import cgroups
    from contain.cgroups import base

    expected = {0.5: ("50000 100000", "50000"), 1.5: ("150000 100000", "150000"),
                0.25: ("25000 100000", "25000"), 0.01: ("1000 100000", "1000")}
    for cpus, (line, quota) in expected.items():
        got = fn(cpus)
        assert isinstance(got, dict), f"cpu_files({cpus}) should return a dict, got {got!r}"
        want = {"cpu.max": line, "cpu.cfs_quota_us": quota, "cpu.cfs_period_us": "100000"}
        for name, value in want.items():
            assert str(got.get(name)) == value, (
                f"cpu_files({cpus})[{name!r}] is {got.get(name)!r}, expected {value!r}")
    # And the kernel agrees: write the answer for 0.5 CPUs into a real cgroup.
    answer = fn(0.5)
    cg = _scratch_cgroup("cpu-max")
    try:
        directory = cg.path("cpu")
        if cgroups.version() == 2:
            base.write(os.path.join(directory, "cpu.max"), str(answer["cpu.max"]))
            stored = base.read(os.path.join(directory, "cpu.max"))
            assert stored == "50000 100000", f"the kernel stored cpu.max = {stored!r}"
        else:
            for name in ("cpu.cfs_period_us", "cpu.cfs_quota_us"):
                base.write(os.path.join(directory, name), str(answer[name]))
            quota = base.read(os.path.join(directory, "cpu.cfs_quota_us"))
            assert quota == "50000", f"the kernel stored cpu.cfs_quota_us = {quota!r}"
    finally:
        cg.remove()


@exercise("03.find-cgroup",
          hint="PATH in /proc/PID/cgroup is relative to the hierarchy's root, and a hierarchy "
               "can be mounted from a subdirectory of it: field 4 of /proc/self/mountinfo is "
               "that mount root (strip it from PATH when it is not '/'). A v1 line or mount can "
               "hold several controllers ('cpu,cpuacct'): compare whole names, not substrings; "
               "which line and mount hold a controller on v2?")
def check_find_cgroup(fn: Callable[[int, str], str]) -> None:
    """Write cgroup_dir(pid, controller): the directory of pid's cgroup for a controller."""
    cg = _scratch_cgroup("find")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        cg.add(sleeper.pid)
        for controller in ("memory", "pids", "cpu"):
            got = fn(sleeper.pid, controller)
            want = cg.path(controller)
            assert got is not None and os.path.realpath(got) == os.path.realpath(want), (
                f"cgroup_dir({sleeper.pid}, {controller!r}) returned {got!r}; the process is "
                f"in {want}")
        mine = fn(os.getpid(), "memory")
        assert os.path.realpath(mine) != os.path.realpath(cg.path("memory")), (
            "for this process your function returned the other process's cgroup")
        with open(os.path.join(mine, "cgroup.procs")) as procs:
            assert str(os.getpid()) in procs.read().split(), (
                f"{mine}/cgroup.procs does not list this process")
    finally:
        sleeper.kill()
        sleeper.wait()
        cg.remove()
