"""Smoke test of the VM tier: the guest really is a cgroup-v2 machine with working limits.

One boot runs PROBE (stdlib only) in the guest; it prints JSON that the tests below check
on the host. A second boot checks exit status, cwd, environment and the overlay.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest

pytestmark = pytest.mark.vm

PROBE = r'''
import json, os, subprocess, sys, time

CG = "/sys/fs/cgroup"


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def flat_keyed(text):
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


def in_child(group, fn):
    """Run fn in a forked child that first joins the cgroup; return its wait status."""
    pid = os.fork()
    if pid == 0:
        try:
            write(group + "/cgroup.procs", str(os.getpid()))
            fn()
        except BaseException as e:
            print("child failed:", repr(e), file=sys.stderr, flush=True)
            os._exit(99)
        os._exit(0)
    return os.waitpid(pid, 0)[1]


def status(st):
    if os.WIFSIGNALED(st):
        return {"signal": os.WTERMSIG(st)}
    return {"exit": os.WEXITSTATUS(st)}


res = {"kernel": os.uname().release}
res["fstype"] = subprocess.run(["stat", "-f", "-c", "%T", CG],
                               capture_output=True, text=True).stdout.strip()
res["controllers"] = read(CG + "/cgroup.controllers").split()
res["subtree_control"] = read(CG + "/cgroup.subtree_control").split()
res["self_cgroup"] = read("/proc/self/cgroup").strip()

g = CG + "/contain-smoke-cpu"
os.mkdir(g)
try:
    write(g + "/cpu.max", "20000 100000")
    res["cpu_max"] = read(g + "/cpu.max").strip()

    def spin():
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            pass

    t0 = time.monotonic()
    res["cpu_child"] = status(in_child(g, spin))
    res["cpu_wall_usec"] = int((time.monotonic() - t0) * 1e6)
    res["cpu_stat"] = flat_keyed(read(g + "/cpu.stat"))
finally:
    os.rmdir(g)

g = CG + "/contain-smoke-mem"
os.mkdir(g)
try:
    write(g + "/memory.max", str(16 << 20))
    if os.path.exists(g + "/memory.swap.max"):
        write(g + "/memory.swap.max", "0")
    res["memory_max"] = read(g + "/memory.max").strip()

    def hog():
        data = b"\x01" * (64 << 20)  # touches every page
        print("allocated", len(data), file=sys.stderr, flush=True)

    res["mem_child"] = status(in_child(g, hog))
    res["memory_events"] = flat_keyed(read(g + "/memory.events"))
finally:
    os.rmdir(g)

print("CONTAIN-SMOKE-JSON " + json.dumps(res), flush=True)
'''


def parse_probe(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("CONTAIN-SMOKE-JSON "):
            return json.loads(line.split(" ", 1)[1])  # type: ignore[no-any-return]
    raise AssertionError(f"no probe JSON in the guest's output:\n{output}")


@pytest.fixture(scope="module")
def probe(vm: Any) -> dict[str, Any]:
    r = vm.run(["/usr/bin/python3", "-I", "-c", PROBE], timeout=300)
    assert r.returncode == 0, r.output
    print(f"probe boot: {r.seconds:.1f} s")
    return parse_probe(r.output)


def test_guest_runs_debian_kernel(probe: dict[str, Any], vm: Any) -> None:
    assert probe["kernel"] == vm.image.kernel_version.split()[0]


def test_guest_is_pure_cgroup_v2(probe: dict[str, Any]) -> None:
    assert probe["fstype"] == "cgroup2fs"
    assert probe["self_cgroup"] == "0::/"  # unified only: no v1 hierarchies listed


def test_controllers_available_and_enabled_at_root(probe: dict[str, Any]) -> None:
    for c in ("cpu", "memory", "pids", "io"):
        assert c in probe["controllers"], probe["controllers"]
        assert c in probe["subtree_control"], probe["subtree_control"]


def test_cpu_max_throttles(probe: dict[str, Any]) -> None:
    assert probe["cpu_max"] == "20000 100000"
    assert probe["cpu_child"] == {"exit": 0}
    stat = probe["cpu_stat"]
    assert stat["nr_throttled"] > 0, stat
    assert stat["throttled_usec"] > 0, stat
    # 20 % of one CPU: a busy loop must get well under its wall time.
    assert stat["usage_usec"] < 0.5 * probe["cpu_wall_usec"], (stat, probe["cpu_wall_usec"])


def test_memory_max_oom_kills(probe: dict[str, Any]) -> None:
    assert probe["memory_max"] == str(16 << 20)
    assert probe["mem_child"] == {"signal": signal.SIGKILL}, probe["mem_child"]
    assert probe["memory_events"]["oom_kill"] >= 1, probe["memory_events"]


def test_exit_status_cwd_env_and_overlay(vm: Any) -> None:
    marker = "/usr/contain-vm-overlay-probe"
    assert not os.path.exists(marker)
    r = vm.run_script(
        'echo "cwd=$(pwd)"\n'
        'echo "foo=$FOO"\n'
        f"touch {marker} && echo written\n"
        "echo to-stderr >&2\n"
        "exit 7",
        cwd="/usr/share",
        env={"FOO": "bar  'baz'"},
        timeout=300,
    )
    assert r.returncode == 7, r.output
    assert r.output.splitlines() == ["cwd=/usr/share", "foo=bar  'baz'", "written", "to-stderr"]
    assert not os.path.exists(marker), "a guest write reached the host"
