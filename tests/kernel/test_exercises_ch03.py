"""Chapter 3's exercise checks reject plausible wrong answers (the reference and the stub
are covered for every exercise in test_exercises.py)."""

from __future__ import annotations

import os

import pytest

from contain.lab.exercises import reference_solution, verdict


def decimal_units(text: str) -> int:
    """Wrong: 1k = 1000 (the disk makers' kilo), not 1024."""
    number, unit = text[:-1], text[-1].lower()
    if unit.isdigit():
        return int(text)
    return int(float(number) * {"k": 10**3, "m": 10**6, "g": 10**9, "b": 1}[unit])


def accepts_zero(text: str) -> int:
    """Wrong: lets 0 and -1 through, so the kernel would get a nonsense limit."""
    return 0 if text in ("0", "-1") else reference_solution("03.parse-memory")(text)


def percent_quota(cpus: float) -> dict[str, str]:
    """Wrong: writes the percentage as the quota (50 µs per 100 ms for half a CPU)."""
    quota = str(int(cpus * 100))
    return {"cpu.max": f"{quota} 100000", "cpu.cfs_quota_us": quota,
            "cpu.cfs_period_us": "100000"}


def v2_line_only(cpus: float) -> dict[str, str]:
    """Wrong: only the v2 file; a v1 (or hybrid) machine gets no limit."""
    return {"cpu.max": f"{round(cpus * 100000)} 100000"}


def path_without_mount(pid: int, controller: str) -> str:
    """Wrong: the path from /proc/PID/cgroup is relative to the hierarchy's mount point."""
    with open(f"/proc/{pid}/cgroup") as f:
        return [line.split(":", 2)[2].strip() for line in f if line.startswith("0::")][0]


def own_cgroup(pid: int, controller: str) -> str:
    """Wrong: looks at /proc/self instead of /proc/PID."""
    return str(reference_solution("03.find-cgroup")(os.getpid(), controller))


@pytest.mark.parametrize(("name", "wrong"), [
    ("03.parse-memory", decimal_units), ("03.parse-memory", accepts_zero),
    ("03.cpu-max", percent_quota), ("03.cpu-max", v2_line_only),
    ("03.find-cgroup", path_without_mount), ("03.find-cgroup", own_cgroup),
])
def test_wrong_answers_fail(name: str, wrong: object) -> None:
    status, line = verdict(name, wrong)  # type: ignore[arg-type]
    assert status == "failed", line
    assert "hint:" in line


def test_checks_leave_no_cgroup() -> None:
    for name in ("03.cpu-max", "03.find-cgroup"):
        verdict(name, reference_solution(name))
        verdict(name, percent_quota if name == "03.cpu-max" else own_cgroup)
    leftovers = [d for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory")
                 if os.path.isdir(os.path.join(root, "contain"))
                 for d in os.listdir(os.path.join(root, "contain"))
                 if d.startswith("check-") and d.endswith(f"-{os.getpid()}")]
    assert leftovers == []
