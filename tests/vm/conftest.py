"""Fixtures for the VM tier: tests that need a real cgroup-v2 kernel (see README.md).

    def test_something(vm):
        r = vm.run([vm.python, "-I", "-c", "print(1)"])
        assert r.returncode == 0, r.output

Every ``vm.run`` boots a fresh VM (about 5 s plus the command); batch commands with
``vm.run_script``. QEMU missing is an error, not a skip: the tier must fail loudly.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import qemu  # noqa: E402

REPO = str(Path(__file__).resolve().parents[2])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.vm)
            if os.environ.get("CONTAIN_IN_VM") == "1":
                item.add_marker(pytest.mark.skip(reason="already inside the test VM"))
            elif platform.machine() != "x86_64":
                reason = f"the VM tier boots an x86_64 kernel; this host is {platform.machine()}"
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclass(frozen=True)
class VM:
    image: qemu.VMImage
    python: str  # the project's venv interpreter in the guest, else /usr/bin/python3
    repo: str = REPO

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = qemu.DEFAULT_TIMEOUT,
    ) -> qemu.VMResult:
        return qemu.run_in_vm(argv, cwd=cwd or self.repo, env=env, timeout=timeout)

    def run_script(
        self,
        script: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = qemu.DEFAULT_TIMEOUT,
    ) -> qemu.VMResult:
        return qemu.run_script_in_vm(script, cwd=cwd or self.repo, env=env, timeout=timeout)


@pytest.fixture(scope="session")
def vm() -> VM:
    """Build (or reuse) the cached kernel + initramfs; fails if QEMU etc. are missing."""
    image = qemu.ensure_image(log=lambda s: print(s, file=sys.stderr))
    python = qemu.VENV_PY if os.access(qemu.VENV_PY, os.X_OK) else "/usr/bin/python3"
    return VM(image=image, python=python)
