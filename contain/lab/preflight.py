"""Is this machine ready for the course? ``contain doctor`` / ``lab.preflight.run()``.

Each check looks at the running system (never at what we hope it is) and says what is
missing and how to fix it. Most fixes are one command: ``sudo bash vm/provision.sh``
installs everything the course needs, idempotently.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass

PROVISION = "run: sudo bash vm/provision.sh"
MIN_KERNEL = (5, 6)  # time namespaces (chapter 2) arrived in 5.6
MIN_PYTHON = (3, 11)


@dataclass(frozen=True)
class Check:
    """One fact about the machine: ``ok``, what we found, and how to fix it if not ok."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _mountinfo() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


def cgroup_mounts(mountinfo: str) -> list[tuple[str, str, str]]:
    """``(mount point, fstype, super options)`` of every cgroup/cgroup2 mount.

    A mountinfo line is ``ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE
    SUPEROPTS`` (proc(5)); the optional fields vary in number, so split at " - ".
    """
    found = []
    for line in mountinfo.splitlines():
        before, sep, after = line.partition(" - ")
        if not sep:
            continue
        fstype, _source, superopts = (after.split() + ["", ""])[:3]
        if fstype in ("cgroup", "cgroup2"):
            found.append((before.split()[4], fstype, superopts))
    return found


def cgroup_version(mountinfo: str) -> str:
    """"v1", "v2", "hybrid" (both kinds mounted) or "none", from mountinfo's text."""
    kinds = {fstype for _, fstype, _ in cgroup_mounts(mountinfo)}
    if kinds == {"cgroup2"}:
        return "v2"
    if kinds == {"cgroup"}:
        return "v1"
    return "hybrid" if kinds else "none"


def check_python() -> Check:
    version = sys.version_info[:3]
    shown = ".".join(map(str, version))
    return Check("python", version[:2] >= MIN_PYTHON, f"Python {shown}",
                 f"install Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer ({PROVISION})")


def check_root() -> Check:
    euid = os.geteuid()
    return Check("root", euid == 0, "running as root" if euid == 0 else f"running as uid {euid}",
                 "namespaces, mounts and cgroups need root: start the lab with sudo")


def check_kernel() -> Check:
    release = platform.release()
    parts = []
    for piece in release.split("-")[0].split(".")[:2]:
        parts.append(int("".join(c for c in piece if c.isdigit()) or 0))
    ok = tuple(parts) >= MIN_KERNEL
    return Check("kernel", ok, f"Linux {release}",
                 f"the course needs Linux {MIN_KERNEL[0]}.{MIN_KERNEL[1]} or newer: "
                 "use Debian 12 / Ubuntu 24.04, or `vagrant up`")


def _v2_controllers(mounts: list[tuple[str, str, str]]) -> list[str]:
    for point, fstype, _ in mounts:
        if fstype == "cgroup2":
            try:
                with open(os.path.join(point, "cgroup.controllers")) as f:
                    return f.read().split()
            except OSError:
                return []
    return []


def check_cgroups() -> Check:
    mounts = cgroup_mounts(_mountinfo())
    version = cgroup_version(_mountinfo())
    v1 = sorted({opt for _, fstype, opts in mounts if fstype == "cgroup"
                 for opt in opts.split(",") if opt not in ("rw", "ro") and "=" not in opt})
    detail = {
        "v2": "cgroup v2 (unified)",
        "v1": f"cgroup v1 (controllers: {','.join(v1)})",
        "hybrid": f"hybrid: v1 controllers ({','.join(v1)}), v2 controllers "
                  f"({','.join(_v2_controllers(mounts)) or 'none'})",
        "none": "no cgroup filesystem mounted",
    }[version]
    return Check("cgroups", version != "none", detail,
                 "mount cgroup2 on /sys/fs/cgroup (any systemd distribution does)")


def check_overlay() -> Check:
    with open("/proc/filesystems") as f:
        ok = any(line.split()[-1] == "overlay" for line in f if line.strip())
    return Check("overlayfs", ok, "overlay in /proc/filesystems" if ok else "overlay not available",
                 "load it: sudo modprobe overlay")


def check_nftables() -> Check:
    nft = shutil.which("nft") or next(
        (p for p in ("/usr/sbin/nft", "/sbin/nft") if os.path.exists(p)), None)
    return Check("nftables", nft is not None, "nft found" if nft else "no nft binary",
                 f"install it: apt-get install nftables ({PROVISION})")


def check_busybox() -> Check:
    from contain import rootfs

    try:
        rootfs.find_busybox()
    except rootfs.RootfsError:
        return Check("busybox-static", False, "no static busybox",
                     f"install it: apt-get install busybox-static ({PROVISION})")
    return Check("busybox-static", True, "static busybox found")


def check_userns() -> Check:
    """Rootless containers (chapter 8) need unprivileged user namespaces."""
    problems = []
    for path, bad in (("/proc/sys/kernel/unprivileged_userns_clone", "0"),
                      ("/proc/sys/user/max_user_namespaces", "0"),
                      ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1")):
        try:
            with open(path) as f:
                if f.read().strip() == bad:
                    problems.append(f"{path.removeprefix('/proc/sys/').replace('/', '.')}={bad}")
        except FileNotFoundError:
            continue
    ok = not problems
    detail = "unprivileged user namespaces allowed" if ok else "disabled: " + ", ".join(problems)
    return Check("user namespaces", ok, detail,
                 "only chapter 8 (rootless) needs them: sysctl -w " +
                 " ".join(p.rsplit("=", 1)[0] + ("=0" if p.endswith("=1") else "=1")
                          for p in problems), required=False)


def check_namespaces() -> Check:
    """The real thing: can a child create a mount, UTS, IPC and PID namespace?"""
    if os.geteuid() != 0:
        return Check("namespaces", False, "not tried (needs root)", "run as root")
    from contain import linux, process

    flags = linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC | linux.CLONE_NEWPID
    try:
        process.call_in_child(linux.unshare, flags)
    except process.ChildError as exc:
        return Check("namespaces", False, str(exc), "check the kernel configuration (namespaces)")
    return Check("namespaces", True, "a child created mnt, uts, ipc and pid namespaces")


def run() -> list[Check]:
    """Every check, in the order a learner should fix them."""
    return [check_python(), check_root(), check_kernel(), check_cgroups(), check_overlay(),
            check_nftables(), check_busybox(), check_userns(), check_namespaces()]


def ready(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)


def render(checks: list[Check]) -> str:
    """A plain-text table, then what is missing and how to fix it."""
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        mark = "ok" if c.ok else ("MISSING" if c.required else "warning")
        lines.append(f"{c.name:<{width}}  {mark:<7}  {c.detail}")
    missing = [c for c in checks if not c.ok]
    lines.append("")
    if not missing:
        lines.append("Everything the course needs is here.")
    for c in missing:
        kind = "missing" if c.required else "optional"
        lines.append(f"{kind}: {c.name} — fix: {c.fix}")
    if not ready(checks):
        lines.append(f"The lab is not ready. Most fixes at once: {PROVISION}")
    elif missing:
        lines.append("The lab is ready (the warnings matter only for the chapters named).")
    return "\n".join(lines)


def main() -> int:
    """``contain doctor``: print the table; exit 1 if a required check failed."""
    checks = run()
    print(render(checks))
    return 0 if ready(checks) else 1
