"""Reference solutions for chapter 3's exercises (``lab.solution("03.cpu-max")``)."""

from __future__ import annotations

import os
import re

from contain.lab.exercises import reference


@reference("03.parse-memory")
def parse_memory(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kmg]?)(i?b)?", text.strip(), re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r}: use a number with an optional unit b, k, m or g")
    number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * 1024 ** "bkmg".index(unit or "b"))
    if size <= 0:
        raise ValueError(f"{text!r}: a size must be more than 0 bytes")
    return size


@reference("03.cpu-max")
def cpu_files(cpus: float) -> dict[str, str]:
    period = 100_000  # µs: the CFS period Docker and runc use
    quota = round(cpus * period)  # µs of CPU time per period, across all CPUs
    return {"cpu.max": f"{quota} {period}",  # v2: one file, "QUOTA PERIOD"
            "cpu.cfs_quota_us": str(quota), "cpu.cfs_period_us": str(period)}  # v1


@reference("03.find-cgroup")
def cgroup_dir(pid: int, controller: str) -> str:
    path = None
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:  # "4:memory:/contain/abc" (v1) or "0::/contain/abc" (v2)
            _, names, where = line.rstrip("\n").split(":", 2)
            if controller in names.split(",") or (names == "" and path is None):
                path = where
                if names:
                    break
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields, _, after = line.partition(" - ")
            fstype, _source, options = after.split()[:3]
            mount_point = fields.split()[4]
            v1_match = fstype == "cgroup" and controller in options.split(",")
            if v1_match or (fstype == "cgroup2" and not _has_v1(controller)):
                assert path is not None
                return os.path.join(mount_point, path.lstrip("/"))
    raise LookupError(f"no hierarchy holds the {controller} controller")


def _has_v1(controller: str) -> bool:
    """True if ``controller`` is mounted as a v1 hierarchy (then the v2 line is not it)."""
    with open("/proc/self/mountinfo") as f:
        return any(after.split()[0] == "cgroup" and controller in after.split()[2].split(",")
                   for _, sep, after in (line.partition(" - ") for line in f) if sep)
