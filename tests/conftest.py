"""Shared fixtures: every test runs contain against a temporary state, never the lab's."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root for the session, so the busybox base is built once."""
    return tmp_path_factory.mktemp("contain-root")


@pytest.fixture(scope="session")
def busybox_rootfs(session_root: Path) -> Path:
    from contain import rootfs

    return rootfs.default_rootfs(session_root)


@pytest.fixture
def contain_env(
    session_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Environment for running contain with a temporary data root and state dir."""
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("CONTAIN_ROOT", str(session_root))
    monkeypatch.setenv("CONTAIN_STATE", str(state))
    return {**os.environ, "CONTAIN_ROOT": str(session_root), "CONTAIN_STATE": str(state)}


@pytest.fixture
def contain(contain_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Run the contain CLI as a fresh process: ``contain("run", "/bin/true")``."""

    def run(*args: str, timeout: float = 60, input: str | None = None,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "contain", *args], env=contain_env, text=True,
            capture_output=True, timeout=timeout, input=input, check=check,
        )

    return run


def mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


@pytest.fixture
def no_new_mounts(tmp_path: Path) -> Iterator[None]:
    """Fail the test if it leaves a mount under its temp dirs or named contain."""
    before = set(mounts())
    yield
    leaked = [m for m in set(mounts()) - before if "contain" in m or str(tmp_path) in m]
    assert not leaked, f"mounts left behind: {leaked}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests under tests/kernel need root: fail loudly rather than skip quietly.
    for item in items:
        if "/tests/kernel/" in str(item.fspath):
            item.add_marker(pytest.mark.kernel)


@pytest.fixture(autouse=True)
def _kernel_tests_need_root(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("kernel") and os.geteuid() != 0:
        pytest.fail("kernel tests need root: run the test command with sudo")
