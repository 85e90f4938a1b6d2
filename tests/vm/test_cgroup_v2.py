"""The cgroup tests again, on a real cgroup-v2 kernel: the learners' machines.

This host is hybrid, so tests/kernel/test_cgroups.py exercises the v1 driver here. This
module boots the VM (tests/vm/qemu.py: Debian 12's kernel, unified hierarchy only) and
runs the very same file inside it with CONTAIN_EXPECT_CGROUP=2, so the run fails if the
v1 driver were chosen. QEMU missing is an error from the ``vm`` fixture, never a pass.

Left out in the guest: the direct-I/O throttle test (the VM has no block device; its
root is 9p + tmpfs), stated here rather than skipped silently.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.vm

GUEST_TESTS = "tests/kernel/test_cgroups.py"
NOT_IN_GUEST = "not device_read_bps"  # no block device in the VM


@pytest.fixture(scope="module")
def guest_run(vm: Any) -> Any:
    argv = [vm.python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", "-rA",
            # tmpfs: the guest's / is an overlay, and an overlay cannot be an upperdir.
            "--basetemp=/run/contain-pytest", "-k", NOT_IN_GUEST, GUEST_TESTS]
    result = vm.run(argv, env={"CONTAIN_EXPECT_CGROUP": "2", "PYTHONDONTWRITEBYTECODE": "1"},
                    timeout=900)
    print(result.output[-6000:])
    print(f"VM tier: {result.seconds:.1f} s from QEMU launch to exit")
    return result


def test_cgroup_tests_pass_on_v2(guest_run: Any) -> None:
    assert guest_run.returncode == 0, guest_run.output[-8000:]
    summary = re.search(r"(\d+) passed", guest_run.output)
    assert summary and int(summary.group(1)) >= 20, guest_run.output[-3000:]
    assert " failed" not in guest_run.output and " error" not in guest_run.output


def test_the_guest_used_the_v2_driver(guest_run: Any) -> None:
    assert "CONTAIN-CGROUP-VERSION=2 layout=v2" in guest_run.output, guest_run.output[-3000:]
    assert "PASSED tests/kernel/test_cgroups.py::test_driver_matches_the_machine" \
        in guest_run.output


def test_cpu_quarter_measured_on_v2(guest_run: Any) -> None:
    shares = [float(m) for m in re.findall(r"CONTAIN-(?:CLI-)?CPU-SHARE v2 --cpus 0.25: "
                                          r"([0-9.]+)", guest_run.output)]
    assert len(shares) == 2, guest_run.output[-3000:]
    assert all(0.15 < s < 0.35 for s in shares), shares
