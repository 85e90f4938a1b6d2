"""Chapter 2 against the real kernel: every namespace kind isolates, joining works, maps,
time offsets, the PID-1 behaviour, bad input, and calls from a multi-threaded process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from contain import namespaces as ns
from contain.lab import ch02
from contain.lab.exercises import reference_solution, stub, verdict
from contain.namespaces import IdMap, Namespace
from contain.process import ChildError, call_in_child


def lines(out: str) -> list[str]:
    return out.strip().splitlines()


# --- the acceptance command --------------------------------------------------------------
def test_acceptance_hostname_pid1_few_processes(contain, busybox_rootfs: Path,
                                                no_new_mounts: None) -> None:
    host = socket.gethostname()
    before = ns.identities()
    done = contain("run", "--rm", "--rootfs", str(busybox_rootfs), "--hostname", "box",
                   "/bin/sh", "-c", 'hostname; echo $$; ls /proc | grep -c "^[0-9]"')
    assert done.returncode == 0, done.stderr
    name, pid, count = lines(done.stdout)
    assert (name, pid) == ("box", "1")
    assert 1 <= int(count) <= 5
    assert socket.gethostname() == host and ns.identities() == before


# --- each kind isolates for real ----------------------------------------------------------
def test_uts_and_pid(contain) -> None:
    done = contain("run", "--rm", "--hostname", "inside", "/bin/sh", "-c", "hostname; echo $$")
    assert lines(done.stdout) == ["inside", "1"]


def test_net_has_only_loopback_and_it_is_up(contain) -> None:
    done = contain("run", "--rm", "/bin/sh", "-c", "ls /sys/class/net; ip link show lo")
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout)[0] == "lo" and "eth0" not in done.stdout
    assert "UP" in done.stdout.split("lo:")[1].split(">")[0]


def test_mnt_proc_is_the_containers(contain) -> None:
    done = contain("run", "--rm", "/bin/sh", "-c", "cat /proc/1/comm; ls /proc | grep -c '^[0-9]'")
    assert lines(done.stdout)[0] in ("sh", "cat")
    assert int(lines(done.stdout)[1]) <= 5


def test_ipc_queue_invisible_from_host() -> None:
    assert ch02.ipc_queue_demo() == {"inside": True, "host": False}


def test_cgroup_namespace_root_view() -> None:
    seen = ch02.cgroup_ns_demo("contain-test-ch02-cgns")
    assert seen == {"host view": "/contain-test-ch02-cgns", "inside a cgroup namespace": "/"}
    assert not os.path.exists(os.path.join(ch02.cgroup2_mount(), "contain-test-ch02-cgns"))


def test_cgroup_file_reads_root_in_container(contain) -> None:
    done = contain("run", "--rm", "/bin/cat", "/proc/self/cgroup")
    assert done.returncode == 0, done.stderr
    assert all(line.endswith(":/") for line in lines(done.stdout))


def test_user_namespace_root_inside_is_100000_outside(contain) -> None:
    done = contain("run", "--name", "ch02userns", "--userns", "/bin/sh", "-c",
                   "id -u; cat /proc/self/uid_map; stat -c %u /bin/busybox; touch /made")
    try:
        assert done.returncode == 0, done.stderr
        uid, uid_map, busybox_owner = lines(done.stdout)
        assert uid == "0" and uid_map.split() == ["0", "100000", "65536"]
        assert busybox_owner == str(ns.OVERFLOW_ID)  # host root is nobody inside
        made = Path(os.environ["CONTAIN_STATE"]) / "ch02userns" / "upper" / "made"
        assert (made.stat().st_uid, made.stat().st_gid) == (100000, 100000)
    finally:
        contain("rm", "ch02userns")


def test_custom_uid_map(contain) -> None:
    done = contain("run", "--rm", "--uidmap", "0:300000:1000", "/bin/cat", "/proc/self/uid_map")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "300000", "1000"]


def test_time_offset_changes_uptime(contain) -> None:
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    done = contain("run", "--rm", "--time-offset", "boottime=86400", "/bin/cat", "/proc/uptime")
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[0]) >= host + 86400


def test_time_offset_with_userns(contain) -> None:
    done = contain("run", "--rm", "--userns", "--time-offset", "boottime=1000",
                   "/bin/cat", "/proc/uptime")
    assert done.returncode == 0, done.stderr


def test_only_chosen_namespaces(contain) -> None:
    host_uts = os.readlink("/proc/self/ns/uts")
    done = contain("run", "--rm", "--ns", "mnt,pid", "/bin/sh", "-c",
                   "readlink /proc/self/ns/uts; hostname")
    assert lines(done.stdout) == [host_uts, socket.gethostname()]


# --- joining -------------------------------------------------------------------------
def test_nsenter_sees_the_containers_hostname_and_pid_namespace(contain_env) -> None:
    with ch02.Detached("--hostname", "joined") as box:
        shared_before = ns.shared_kinds(os.getpid(), box.pid)
        assert shared_before == {Namespace.USER, Namespace.TIME}
        done = ns.nsenter(box.pid, ["/bin/sh", "-c", "hostname; ls /proc | grep -c '^[0-9]'"])
        assert done.returncode == 0, done.stderr
        assert lines(done.stdout)[0] == "joined" and int(lines(done.stdout)[1]) <= 6
        only_uts = ns.nsenter(box.pid, ["hostname"], [Namespace.UTS])
        assert only_uts.stdout.strip() == "joined"
    assert box.popen is not None and box.popen.returncode == 143  # SIGTERM passed through


def test_nsenter_into_user_namespace_is_root(contain_env) -> None:
    with ch02.Detached("--userns") as box:
        done = ns.nsenter(box.pid, ["/bin/sh", "-c", "id -u; cat /proc/self/uid_map"])
        assert done.returncode == 0, done.stderr
        assert lines(done.stdout)[0] == "0" and "100000" in done.stdout


def test_join_dead_pid_is_one_clear_error() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    with pytest.raises(ProcessLookupError, match=f"no process with PID {dead.pid}"):
        ns.nsenter(dead.pid, ["true"])
    with pytest.raises(ChildError, match="no process with PID"):
        call_in_child(ns.enter, dead.pid)


def test_write_id_maps_twice_is_a_clear_error() -> None:
    def twice() -> str:
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            ns.unshare([Namespace.USER])
            os.write(w, b"x")
            time.sleep(5)
            os._exit(0)
        os.read(r, 1)
        try:
            ns.write_id_maps(child, [IdMap(0, 100000, 10)], [IdMap(0, 100000, 10)])
            try:
                ns.write_id_maps(child, [IdMap(0, 100000, 10)], [IdMap(0, 100000, 10)])
            except ns.NamespaceError as exc:
                return str(exc)
            return "no error"
        finally:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)

    assert "write-once" in call_in_child(twice)


# --- PID 1 ------------------------------------------------------------------------------
def test_exit_status_passes_through(contain) -> None:
    assert contain("run", "--rm", "/bin/sh", "-c", "exit 7").returncode == 7


def test_init_reaps_orphaned_zombies(contain) -> None:
    script = ("(sleep 0.2 &); sleep 1; "
              "for s in /proc/[0-9]*/stat; do cut -d' ' -f3 $s; done | grep -c Z; true")
    done = contain("run", "--rm", "--init", "/bin/sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout)[-1] == "0"


def test_sigterm_is_forwarded_to_the_command(contain_env) -> None:
    with ch02.Detached() as box:
        assert box.pid > 0
    assert box.popen is not None and box.popen.returncode == 128 + signal.SIGTERM


# --- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--ns", "mnt,bogus"], "unknown namespace 'bogus'"),
    (["--uidmap", "0:100000"], "malformed id map '0:100000'"),
    (["--time-offset", "boottime=soon"], "SECONDS must be a whole number"),
    (["--time-offset", "boottime=-99999999999"], "may not take a clock below zero"),
])
def test_bad_input_one_line(contain, no_new_mounts: None, args: list[str], message: str) -> None:
    done = contain("run", "--rm", *args, "/bin/true")
    assert done.returncode == 125
    assert len(lines(done.stderr)) == 1 and message in done.stderr
    assert done.stderr.startswith("contain: ")
    assert os.listdir(os.environ["CONTAIN_STATE"]) == []


# --- from a multi-threaded process (like a Jupyter kernel) -------------------------------------
def test_multi_threaded_caller_keeps_its_namespaces(contain_env) -> None:
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        before = ns.identities()
        host = socket.gethostname()
        assert call_in_child(lambda: (ns.unshare(list(Namespace)), ns.identities())[1]) != before
        with ch02.Detached("--hostname", "threads") as box:
            assert ns.nsenter(box.pid, ["hostname"]).stdout.strip() == "threads"
        assert ch02.ipc_queue_demo()["inside"]
        assert ns.identities() == before and socket.gethostname() == host
    finally:
        stop.set()


# --- exercises -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["02.shared", "02.idmap"])
def test_exercise_reference_passes_and_stub_does_not(name: str) -> None:
    assert verdict(name, reference_solution(name))[0] == "passed"
    assert verdict(name, stub)[0] == "not-attempted"


def test_exercise_wrong_answers_fail() -> None:
    assert verdict("02.shared", lambda a, b: {"mnt", "uts"})[0] == "failed"
    assert verdict("02.shared", lambda a, b: set())[0] == "failed"
    assert verdict("02.idmap", lambda uid, text: uid + 100000)[0] == "failed"
    assert verdict("02.idmap", lambda uid, text: 100000 + uid if uid < 65536 else None)[0] \
        == "failed"


def test_python_api_module_is_importable_without_ipywidgets_cost() -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "contain", "version"],
                          capture_output=True, text=True)
    assert "pyroute2" not in done.stderr and "ipywidgets" not in done.stderr
