"""cgroup limits enforced by the real kernel, whichever version this machine runs.

The same file runs on the hybrid CI host (v1 driver) and inside the cgroup-v2 VM
(tests/vm/test_cgroup_v2.py), so nothing here names a version's files: the drivers do.
Set CONTAIN_EXPECT_CGROUP=1 or 2 to make the run fail if the other driver was chosen.
Every cgroup is named contain/ch3-<pid>-<n> and checked to be gone afterwards.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from contain import cgroups
from contain.cgroups import Cgroup, Limits, parse_limits

Runner = Callable[..., subprocess.CompletedProcess[str]]
_names = itertools.count()
CREATED: list[str] = []  # container ids used here, for the leak check


def new_id() -> str:
    cid = f"ch3-{os.getpid()}-{next(_names)}"
    CREATED.append(cid)
    return cid


def leftovers(cid: str) -> list[str]:
    """Directories of cgroup contain/<cid> still present, in any hierarchy."""
    roots = {m.mount_point for m in cgroups.hierarchy.mounts()}
    return [p for root in roots if os.path.isdir(p := os.path.join(root, "contain", cid))]


@pytest.fixture
def cgroup() -> Iterator[Callable[[Limits], Cgroup]]:
    made: list[Cgroup] = []

    def make(limits: Limits) -> Cgroup:
        cg = cgroups.create(cgroups.container_cgroup(new_id()), limits)
        made.append(cg)
        return cg

    yield make
    for cg in made:
        cg.remove()
        assert not cg.exists(), f"{cg} left behind"


def in_cgroup(cg: Cgroup, fn: Callable[[], None]) -> tuple[int, float]:
    """Fork a child, put it in ``cg`` before it runs ``fn``; return (wait status, wall s)."""
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(go_w)
        os.read(go_r, 1)
        try:
            fn()
        except BaseException:
            os._exit(99)
        os._exit(0)
    os.close(go_r)
    _add_or_kill(cg, pid)
    t0 = time.monotonic()
    os.write(go_w, b"g")
    os.close(go_w)
    _, status = os.waitpid(pid, 0)
    return status, time.monotonic() - t0


def spin(seconds: float) -> Callable[[], None]:
    def busy() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    return busy


# --- the driver -----------------------------------------------------------------------
def test_driver_matches_the_machine() -> None:
    version = cgroups.version()
    print(f"CONTAIN-CGROUP-VERSION={version} layout={cgroups.layout()}")
    expected = os.environ.get("CONTAIN_EXPECT_CGROUP")
    if expected:
        assert version == int(expected), f"driver v{version}, expected v{expected}"
    assert cgroups.driver().version == version


def test_cpu_quota_holds_a_busy_loop_near_a_quarter(cgroup: Callable[[Limits], Cgroup]) -> None:
    cg = cgroup(parse_limits(cpus="0.25"))
    status, wall = in_cgroup(cg, spin(2.0))
    assert os.waitstatus_to_exitcode(status) == 0
    stats = cg.stats()
    share = stats.cpu_usage_usec / 1e6 / wall
    print(f"CONTAIN-CPU-SHARE v{cg.version} --cpus 0.25: {share:.3f} of one CPU "
          f"over {wall:.2f} s")
    assert 0.15 < share < 0.35, f"used {share:.2f} of a CPU under --cpus 0.25"
    assert stats.cpu_throttled_periods > 0 and stats.cpu_throttled_usec > 0, stats


def test_memory_limit_oom_kills(cgroup: Callable[[Limits], Cgroup]) -> None:
    cg = cgroup(parse_limits(memory="16m"))

    def hog() -> None:
        chunks = [b"\x01" * (1 << 20) for _ in range(64)]  # 64 MiB, every page touched
        assert chunks

    status, _ = in_cgroup(cg, hog)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    stats = cg.stats()
    assert stats.oom_kills >= 1, stats
    assert stats.memory_limit == 16 << 20
    assert stats.memory_peak >= 12 << 20, stats


def test_pids_max_refuses_forks(cgroup: Callable[[Limits], Cgroup]) -> None:
    cg = cgroup(parse_limits(pids_limit="4"))

    def forker() -> None:
        children, refused = [], 0
        for _ in range(8):
            try:
                pid = os.fork()
            except OSError as exc:
                assert exc.errno == errno.EAGAIN
                refused += 1
                continue
            if pid == 0:
                time.sleep(5)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os._exit(10 + len(children) if refused else 1)

    status, _ = in_cgroup(cg, forker)
    assert os.waitstatus_to_exitcode(status) == 13, "expected 3 children (4 pids with the parent)"
    assert cg.stats().pids_refused >= 5


def test_stats_move_and_freeze_stops_the_clock(cgroup: Callable[[Limits], Cgroup]) -> None:
    cg = cgroup(Limits())
    pid = os.fork()
    if pid == 0:
        spin(120)()
        os._exit(0)
    try:
        cg.add(pid)
        before = cg.stats()
        time.sleep(0.3)
        moving = cg.stats()
        assert moving.cpu_usage_usec > before.cpu_usage_usec
        assert moving.pids_current == 1
        cg.freeze()
        frozen = cg.stats()
        assert frozen.frozen
        time.sleep(0.3)
        assert cg.stats().cpu_usage_usec == frozen.cpu_usage_usec, "a frozen group ran"
        cg.thaw()
        assert not cg.stats().frozen
        time.sleep(0.3)
        assert cg.stats().cpu_usage_usec > frozen.cpu_usage_usec
        assert cg.procs() == [pid]
    finally:
        cg.kill_all()
        os.waitpid(pid, 0)


def test_a_process_joins_by_itself(cgroup: Callable[[Limits], Cgroup]) -> None:
    """join_self: on v1 through `tasks` (no global lock); elsewhere like add(getpid())."""
    cg = cgroup(Limits())
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:  # single-threaded, as a container's PID 1 is
        try:
            cg.join_self()
            os.write(ready_write, b"joined")
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        assert os.read(ready_read, 16) == b"joined"
        assert cg.procs() == [child]
        if cg.version == 1:  # every hierarchy, not just the one procs() reads
            for line in Path(f"/proc/{child}/cgroup").read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                if controllers in ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio",
                                   "freezer"):
                    assert path == f"/{cg.name}", line
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        os.close(ready_read)
        os.close(ready_write)


def test_kill_all_and_remove_leave_nothing() -> None:
    cg = cgroups.create(cgroups.container_cgroup(new_id()), parse_limits(pids_limit="20"))
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.read(go_r, 1)  # forks only once the parent has put it in the cgroup
        for _ in range(3):  # grandchildren the parent knows nothing about
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
        time.sleep(60)
        os._exit(0)
    try:
        cg.add(pid)
        os.write(go_w, b"g")
        deadline = time.monotonic() + 60
        while len(cg.procs()) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(cg.procs()) == 4
    finally:
        cg.remove()
        _, status = os.waitpid(pid, 0)
    assert os.WTERMSIG(status) == signal.SIGKILL
    assert not cg.exists()
    assert leftovers(cg.name.split("/")[1]) == []


def test_cpuset_pins_and_weight_is_written(cgroup: Callable[[Limits], Cgroup]) -> None:
    cg = cgroup(parse_limits(cpuset_cpus="0", cpu_shares="512"))

    def pinned() -> None:
        assert os.sched_getaffinity(0) == {0}

    status, _ = in_cgroup(cg, pinned)
    assert os.waitstatus_to_exitcode(status) == 0, "not pinned to CPU 0"
    files = dict(cg.applied.writes)
    weight_file = [v for k, v in files.items() if k.endswith(("cpu.shares", "cpu.weight"))]
    assert weight_file in (["512"], [str(cgroups.limits.shares_to_weight(512))])


def test_unknown_file_fails_cleanly() -> None:
    cid = new_id()
    with pytest.raises(cgroups.CgroupError, match="does not exist|not mounted"):
        cgroups.create(cgroups.container_cgroup(cid),
                       parse_limits(cgroup_conf=["memory.no_such_file=1"]))
    assert leftovers(cid) == []


def _freeze_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The freeze is written for real, but waiting for it reports a timeout (a task stuck
    in uninterruptible sleep does this on a real host: the group stays FREEZING)."""
    real_wait = cgroups.base.wait_for

    def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        if what.endswith("to freeze"):
            raise cgroups.CgroupError(f"timed out waiting for {what}")
        real_wait(condition, what, timeout)

    monkeypatch.setattr(cgroups.base, "wait_for", wait_for)


def _sleeper(cg: Cgroup) -> int:
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    _add_or_kill(cg, pid)
    return pid


def _add_or_kill(cg: Cgroup, pid: int) -> None:
    """Put ``pid`` in ``cg``; if that fails, leave no orphan child behind."""
    try:
        cg.add(pid)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise


@pytest.mark.parametrize("how", ["kill_all", "kill_frozen"])
def test_a_failed_freeze_never_leaves_the_group_frozen(
    cgroup: Callable[[Limits], Cgroup], monkeypatch: pytest.MonkeyPatch, how: str,
) -> None:
    """A group left frozen keeps its processes (they cannot act on SIGKILL): rmdir EBUSY."""
    cg = cgroup(Limits())
    pid = _sleeper(cg)
    try:
        _freeze_times_out(monkeypatch)
        try:
            if how == "kill_all":
                cg.kill_all()  # v2 with cgroup.kill never freezes: it must simply work
            else:
                cg.kill_frozen(cg.procs())  # what v1 (and v2 before 5.14) kill_all does
        except cgroups.CgroupError as exc:
            assert "to freeze" in str(exc), exc
        monkeypatch.undo()
        assert not cg.stats().frozen, "the failed freeze left the group frozen"
    finally:
        monkeypatch.undo()
        cg.remove()  # must succeed: the group is thawed
        os.waitpid(pid, 0)
    assert not cg.exists()


def test_a_failed_cleanup_does_not_hide_the_first_error(monkeypatch: pytest.MonkeyPatch) -> None:
    cid = new_id()
    cls = cgroups.driver()
    real_remove = cls.remove

    def remove(self: Cgroup) -> None:
        real_remove(self)
        raise cgroups.CgroupError("injected: removal failed")

    monkeypatch.setattr(cls, "remove", remove)
    with pytest.raises(cgroups.CgroupError) as err:
        cgroups.create(cgroups.container_cgroup(cid),
                       parse_limits(cgroup_conf=["memory.no_such_file=1"]))
    assert "memory.no_such_file does not exist" in str(err.value), err.value
    notes = getattr(err.value, "__notes__", [])
    assert notes == [f"removing contain/{cid} afterwards also failed: injected: removal failed"]
    assert leftovers(cid) == []


def disk_of(path: Path) -> str:
    """The /dev node of the disk holding ``path`` (throttles name whole disks)."""
    st = os.stat(path)
    sys_dir = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    assert sys_dir.exists(), f"{path} is not on a block device (tmpfs? 9p?): nothing to throttle"
    if (sys_dir / "partition").exists():
        sys_dir = sys_dir.resolve().parent
    name = dict(line.split("=", 1) for line in (sys_dir / "uevent").read_text().split())["DEVNAME"]
    return f"/dev/{name}"


def test_device_read_bps_throttles_direct_io(cgroup: Callable[[Limits], Cgroup],
                                            tmp_path: Path) -> None:
    data, size = tmp_path / "data", 3 << 20
    data.write_bytes(os.urandom(size))
    cg = cgroup(parse_limits(device_read_bps=[f"{disk_of(tmp_path)}:1m"]))

    def read_direct() -> None:
        import mmap

        fd = os.open(data, os.O_RDONLY | os.O_DIRECT)  # past the page cache, to the disk
        buf = mmap.mmap(-1, 1 << 20)  # page-aligned, as O_DIRECT needs
        for i in range(size >> 20):
            assert os.preadv(fd, [buf], i << 20) == 1 << 20
        os.close(fd)

    status, wall = in_cgroup(cg, read_direct)
    assert os.waitstatus_to_exitcode(status) == 0
    stats = cg.stats()
    print(f"CONTAIN-IO 3 MiB of direct reads at 1 MiB/s took {wall:.2f} s")
    assert stats.io_read_bytes >= size
    assert wall > 1.5, f"3 MiB read in {wall:.2f} s under a 1 MiB/s throttle"


# --- the CLI: the acceptance commands -----------------------------------------------
def _stats(path: Path) -> dict[str, object]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_cli_memory_oom_exits_137(
    contain: Runner, busybox_rootfs: Path, tmp_path: Path,
) -> None:
    cid, stats = new_id(), tmp_path / "stats.json"
    p = contain("run", "--name", cid, "--rootfs", str(busybox_rootfs), "--memory", "32m",
                "--stats-file", str(stats), "/bin/sh", "-c", "tail /dev/zero", timeout=600)
    assert p.returncode == 137, p.stderr
    assert "contain: the container was OOM-killed (memory limit 32 MiB)" in p.stderr
    assert _stats(stats)["oom_kills"] >= 1  # type: ignore[operator]
    assert leftovers(cid) == []


def test_cli_pids_limit_stops_a_fork_bomb(
    contain: Runner, busybox_rootfs: Path, tmp_path: Path,
) -> None:
    cid, stats = new_id(), tmp_path / "stats.json"
    p = contain("run", "--name", cid, "--rootfs", str(busybox_rootfs), "--pids-limit", "10",
                "--stats-file", str(stats), "/bin/sh", "-c",
                "bomb() { bomb | bomb & }; bomb; sleep 1; echo still here", timeout=600)
    assert p.returncode == 0, p.stderr
    assert "still here" in p.stdout
    assert "can't fork" in p.stderr  # the kernel said EAGAIN
    data = _stats(stats)
    assert data["pids_limit"] == 10 and data["pids_refused"] > 0, data  # type: ignore[operator]
    assert leftovers(cid) == []


def test_cli_cpus_quarter(
    contain: Runner, busybox_rootfs: Path, tmp_path: Path,
) -> None:
    cid, stats = new_id(), tmp_path / "stats.json"
    # The container times its own busy loop with /proc/uptime (the same clock as the host's).
    script = ("read a _ < /proc/uptime; timeout 4 sh -c 'while :; do :; done'; "
              "read b _ < /proc/uptime; echo $a $b")
    p = contain("run", "--name", cid, "--rootfs", str(busybox_rootfs), "--cpus", "0.25",
                "--stats-file", str(stats), "/bin/sh", "-c", script, timeout=600)
    assert p.returncode == 0, p.stderr
    start, end = map(float, p.stdout.split())
    usage = _stats(stats)["cpu_usage_usec"] / 1e6  # type: ignore[operator]
    share = usage / (end - start)
    print(f"CONTAIN-CLI-CPU-SHARE v{cgroups.version()} --cpus 0.25: {share:.3f} of one CPU")
    assert 0.17 < share < 0.33, f"used {share:.2f} of a CPU under --cpus 0.25"
    assert leftovers(cid) == []


def test_cli_cgroup_namespace_is_rooted_at_the_container(
    contain: Runner, busybox_rootfs: Path,
) -> None:
    cid = new_id()
    p = contain("run", "--name", cid, "--rootfs", str(busybox_rootfs), "/bin/cat",
                "/proc/self/cgroup", timeout=600)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split()
    assert "0::/" in lines, lines
    if cgroups.version() == 1:  # every v1 hierarchy we joined shows as "/" too
        assert any(line.endswith(":memory:/") for line in lines), lines
    assert leftovers(cid) == []


@pytest.mark.parametrize("options", [
    ["--memory", "12qb"], ["--memory", "-1"], ["--cpus", "0"],
    ["--memory", "32m", "--memory-swap", "16m"], ["--cgroup-conf", "foo.bar=1"],
    ["--cpuset-cpus", "4096"], ["--cgroup-conf", "memory.no_such_file=1"],
    ["--cgroup-conf", "cgroup.procs=1"], ["--cgroup-conf", "memory/../../cgroup.procs=1"],
])
def test_cli_bad_input_one_line_no_cgroup(
    contain: Runner, busybox_rootfs: Path, options: list[str],
) -> None:
    cid = new_id()
    p = contain("run", "--name", cid, "--rootfs", str(busybox_rootfs), *options, "/bin/true",
                timeout=600)
    assert p.returncode == 125
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("contain: "), lines
    assert options[-1].split("=")[0] in lines[0] or options[-1] in lines[0], lines
    assert leftovers(cid) == []


def test_cli_cgroup_conf_of_the_other_version_says_so(
    contain: Runner, busybox_rootfs: Path,
) -> None:
    cid = new_id()
    conf, hint = ("cpu.max=50000", "cpu.cfs_quota_us / --cpus") if cgroups.version() == 1 \
        else ("cpu.cfs_quota_us=50000", "cpu.max / --cpus")
    key, v = conf.split("=")[0], cgroups.version()
    p = contain("run", "--name", cid, "--rootfs", str(busybox_rootfs), "--cgroup-conf", conf,
                "/bin/true", timeout=600)
    assert p.returncode == 125
    assert p.stderr.strip().splitlines() == [
        f"contain: --cgroup-conf {conf}: {key} is a cgroup v{3 - v} file; this host uses "
        f"cgroup v{v} (use {hint})"]
    assert leftovers(cid) == []


def test_no_cgroup_of_ours_remains() -> None:
    """Runs last in this file: every contain/ch3-* cgroup made above is gone."""
    left = [path for cid in CREATED for path in leftovers(cid)]
    assert left == []
