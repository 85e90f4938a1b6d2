"""Parsing every cgroup limit option (no root needed), and the files each version writes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from contain.cgroups import v1, v2
from contain.cgroups.hierarchy import cgroup_of, mounts
from contain.cgroups.limits import (
    DeviceRate,
    LimitError,
    Limits,
    check_version,
    expand_list,
    parse_bytes,
    parse_limits,
    shares_to_weight,
    weight_to_shares,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("256m", 256 << 20), ("1g", 1 << 30), ("512k", 512 << 10), ("4096", 4096), ("100b", 100),
    ("64M", 64 << 20), ("1.5g", 3 << 29), ("32mb", 32 << 20), ("1GiB", 1 << 30), ("2t", 2 << 40),
])
def test_sizes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["12qb", "-1", "", "m", "0", "1.2.3m", "ten", "5 mm", "0.1b"])
def test_bad_sizes_name_the_value_and_the_form(text: str) -> None:
    with pytest.raises(LimitError) as err:
        parse_bytes(text, "--memory")
    message = str(err.value)
    assert message.startswith(f"--memory {text}:"), message
    assert "256m" in message and "\n" not in message


def test_every_option_parses() -> None:
    limits = parse_limits(
        cpus="0.5", cpu_shares="512", memory="256m", memory_swap="1g", pids_limit="64",
        blkio_weight="500", device_read_bps=["/dev/vda:1m"], device_write_bps=["/dev/vda:2m"],
        cpuset_cpus="0-1", cpuset_mems="0", cgroup_conf=["memory.high=64m"], online_cpus=2,
    )
    assert limits == Limits(
        cpus=0.5, cpu_shares=512, memory=256 << 20, memory_swap=1 << 30, pids_limit=64,
        blkio_weight=500, device_read_bps=(DeviceRate("/dev/vda", 1 << 20, "--device-read-bps"),),
        device_write_bps=(DeviceRate("/dev/vda", 2 << 20, "--device-write-bps"),),
        cpuset_cpus="0-1", cpuset_mems="0", cgroup_conf=(("memory.high", str(64 << 20)),),
    )
    assert limits.cpu_quota_us() == 50_000
    assert parse_limits(cpu_weight="50").cpu_weight == 50
    assert parse_limits(memory="1g", memory_swap="-1").memory_swap == -1
    assert parse_limits() == Limits()


@pytest.mark.parametrize(("options", "start", "form"), [
    ({"memory": "12qb"}, "--memory 12qb:", "256m"),
    ({"memory": "-1"}, "--memory -1:", "256m"),
    ({"memory": "1m"}, "--memory 1m:", "6m"),
    ({"cpus": "0"}, "--cpus 0:", "0.01 to 2"),
    ({"cpus": "3"}, "--cpus 3:", "0.01 to 2"),
    ({"cpus": "half"}, "--cpus half:", "e.g. 0.5"),
    ({"cpus": "-0.5"}, "--cpus -0.5:", "e.g. 0.5"),
    ({"memory": "256m", "memory_swap": "128m"}, "--memory-swap 128m:", "at least"),
    ({"memory_swap": "1g"}, "--memory-swap 1g:", "--memory 256m --memory-swap 1g"),
    ({"memory": "256m", "memory_swap": "lots"}, "--memory-swap lots:", "256m"),
    ({"cpu_shares": "1"}, "--cpu-shares 1:", "2 to 262144"),
    ({"cpu_shares": "many"}, "--cpu-shares many:", "whole number"),
    ({"cpu_weight": "0"}, "--cpu-weight 0:", "1 to 10000"),
    ({"cpu_shares": "512", "cpu_weight": "50"}, "--cpu-shares and --cpu-weight", "only one"),
    ({"pids_limit": "0"}, "--pids-limit 0:", "e.g. --pids-limit 64"),
    ({"pids_limit": "ten"}, "--pids-limit ten:", "whole number"),
    ({"blkio_weight": "5"}, "--blkio-weight 5:", "10 to 1000"),
    ({"device_read_bps": ["vda:1m"]}, "--device-read-bps vda:1m:", "DEVICE:RATE"),
    ({"device_write_bps": ["/dev/vda"]}, "--device-write-bps /dev/vda:", "DEVICE:RATE"),
    ({"device_write_bps": ["/dev/vda:fast"]}, "--device-write-bps fast:", "256m"),
    ({"cpuset_cpus": "0-"}, "--cpuset-cpus 0-:", "0-1"),
    ({"cpuset_cpus": "3-1"}, "--cpuset-cpus 3-1:", "1-3"),
    ({"cpuset_mems": "a"}, "--cpuset-mems a:", "0-1"),
    ({"cgroup_conf": ["foo.bar=1"]}, "--cgroup-conf foo.bar=1:", "unknown controller 'foo'"),
    ({"cgroup_conf": ["memory.high"]}, "--cgroup-conf memory.high:", "CONTROLLER.FILE=VALUE"),
    ({"cgroup_conf": ["../x.y=1"]}, "--cgroup-conf ../x.y=1:", "CONTROLLER.FILE=VALUE"),
])
def test_bad_values_one_line(options: dict[str, object], start: str, form: str) -> None:
    with pytest.raises(LimitError) as err:
        parse_limits(online_cpus=2, **options)  # type: ignore[arg-type]
    message = str(err.value)
    assert message.startswith(start), message
    assert form in message, message
    assert "\n" not in message


def test_weight_conversions_match_runc() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert shares_to_weight(1024) == 39  # runc: the default 1024 shares is weight 39
    assert weight_to_shares(1) == 2 and weight_to_shares(10000) == 262144
    assert expand_list("0-2,5") == {0, 1, 2, 5}


def test_v1_and_v2_name_the_same_limits() -> None:
    limits = parse_limits(cpus="0.5", cpu_shares="512", memory="256m", memory_swap="1g",
                          pids_limit="64", cpuset_cpus="0", online_cpus=2)
    one = {name: value for _, name, value in v1.plan(limits)}
    two = dict(v2.plan(limits))
    assert one == {
        "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000", "cpu.shares": "512",
        "cpuset.cpus": "0", "memory.limit_in_bytes": str(256 << 20),
        "memory.memsw.limit_in_bytes": str(1 << 30), "pids.max": "64",
    }
    assert two == {
        "cpu.max": "50000 100000", "cpu.weight": str(shares_to_weight(512)), "cpuset.cpus": "0",
        "memory.max": str(256 << 20), "memory.swap.max": str((1 << 30) - (256 << 20)),
        "pids.max": "64",
    }
    # v1 must write the memory limit before memsw (memsw >= memory, or EINVAL).
    names = [name for _, name, _ in v1.plan(limits)]
    assert names.index("memory.limit_in_bytes") < names.index("memory.memsw.limit_in_bytes")
    assert dict(v2.plan(parse_limits(memory="1g", memory_swap="-1")))["memory.swap.max"] == "max"


def test_mountinfo_and_proc_cgroup_are_read() -> None:
    found = mounts()
    assert found, "no cgroup mounts found in /proc/self/mountinfo"
    assert all(m.fstype in ("cgroup", "cgroup2") for m in found)
    assert cgroup_of("self").startswith("/")


def test_cli_rejects_bad_limits_in_one_line() -> None:
    """Parsing happens before root is needed: the error is the same for anyone."""
    p = subprocess.run([sys.executable, "-m", "contain", "run", "--memory", "12qb", "/bin/true"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 125
    assert p.stderr.strip().splitlines() == [
        "contain: --memory 12qb: not a size; use a number with an optional unit b, k, m or g "
        "(e.g. 256m)"]


@pytest.mark.parametrize("text", ["cgroup.procs=1", "cgroup.threads=1", "cgroup.freeze=1",
                                  "cgroup.kill=1", "cgroup.subtree_control=+cpu"])
def test_cgroup_core_files_are_refused(text: str) -> None:
    """cgroup.procs=PID would move a host process into the container (killed on removal)."""
    with pytest.raises(LimitError) as err:
        parse_limits(cgroup_conf=[text])
    message = str(err.value)
    assert message.startswith(f"--cgroup-conf {text}: the cgroup.* core files are managed "
                              "by contain"), message
    assert "memory.high=64m" in message and "\n" not in message


@pytest.mark.parametrize("text", ["devices.allow=a", "devices.deny=a", "freezer.state=FROZEN"])
def test_devices_and_freezer_are_refused(text: str) -> None:
    """devices.allow=a would hand every host device (a raw disk) to the container."""
    with pytest.raises(LimitError) as err:
        parse_limits(cgroup_conf=[text])
    controller = text.split(".")[0]
    assert str(err.value).startswith(
        f"--cgroup-conf {text}: the {controller} controller is managed by contain")


@pytest.mark.parametrize("text", ["memory/../../x.y=1", "memory..high=1", "../memory.high=1",
                                  "memory.high/..=1"])
def test_cgroup_conf_paths_are_refused(text: str) -> None:
    with pytest.raises(LimitError) as err:
        parse_limits(cgroup_conf=[text])
    message = str(err.value)
    assert message.startswith(f"--cgroup-conf {text}: a cgroup file name cannot contain "
                              "'/' or '..'; use CONTROLLER.FILE=VALUE"), message


@pytest.mark.parametrize(("conf", "version", "expected"), [
    ("cpu.max=50000 100000", 1, "--cgroup-conf cpu.max=50000 100000: cpu.max is a cgroup v2 "
     "file; this host uses cgroup v1 (use cpu.cfs_quota_us / --cpus)"),
    ("memory.max=64m", 1, f"--cgroup-conf memory.max={64 << 20}: memory.max is a cgroup v2 "
     "file; this host uses cgroup v1 (use memory.limit_in_bytes / --memory)"),
    ("io.max=8:0 rbps=1", 1, "--cgroup-conf io.max=8:0 rbps=1: io.max is a cgroup v2 file; "
     "this host uses cgroup v1 (use blkio.throttle.read_bps_device / --device-read-bps, "
     "--device-write-bps)"),
    ("io.latency=8:0 target=1", 1, "--cgroup-conf io.latency=8:0 target=1: io.latency is a "
     "cgroup v2 file; this host uses cgroup v1 (use the blkio.* files)"),
    ("cpu.cfs_quota_us=50000", 2, "--cgroup-conf cpu.cfs_quota_us=50000: cpu.cfs_quota_us is "
     "a cgroup v1 file; this host uses cgroup v2 (use cpu.max / --cpus)"),
    ("memory.limit_in_bytes=1g", 2, f"--cgroup-conf memory.limit_in_bytes={1 << 30}: "
     "memory.limit_in_bytes is a cgroup v1 file; this host uses cgroup v2 "
     "(use memory.max / --memory)"),
    ("blkio.weight=100", 2, "--cgroup-conf blkio.weight=100: blkio.weight is a cgroup v1 "
     "file; this host uses cgroup v2 (use the io.* files)"),
])
def test_cgroup_conf_of_the_other_version_names_the_equivalent(
    conf: str, version: int, expected: str,
) -> None:
    limits = parse_limits(cgroup_conf=[conf])
    with pytest.raises(LimitError) as err:
        check_version(limits, version)
    assert str(err.value) == expected
    check_version(limits, 3 - version)  # the same file is fine on its own version


def test_files_of_both_versions_pass_the_version_check() -> None:
    both = parse_limits(cgroup_conf=["pids.max=10", "memory.no_such_file=1", "cpuset.cpus=0"])
    check_version(both, 1)
    check_version(both, 2)


def test_the_drivers_do_not_import_each_other() -> None:
    """What both need (host warnings, rmdir retries) lives in base, so v2 stands alone."""
    for module, other in (("v2", "v1"), ("v1", "v2")):
        code = (f"import sys, contain.cgroups.{module}; "
                f"print('contain.cgroups.{other}' in sys.modules)")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60, check=True)
        assert p.stdout.strip() == "False", f"importing {module} imported {other}"
