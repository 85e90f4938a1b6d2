"""Run commands inside a throwaway cgroup-v2 Linux VM (QEMU, software emulation).

The CI/dev machines have hybrid cgroups; learners' VMs are pure cgroup v2. This harness
boots Debian 12's own kernel (``linux-image-amd64``) under QEMU/TCG with a tiny busybox
initramfs. The guest sees the host's root filesystem read-only over 9p, with a tmpfs
overlay on top (writes stay in the guest), cgroup2 mounted at ``/sys/fs/cgroup`` and the
``cpu cpuset io memory pids`` controllers enabled at the root, as systemd does on a
learner's VM. See tests/vm/README.md.

Stdlib only. Use from Python::

    from tests.vm.qemu import run_in_vm
    r = run_in_vm(["/usr/bin/python3", "-I", "-c", "print(1)"], cwd="/work/main")
    r.returncode, r.output

or from a shell::

    python tests/vm/qemu.py [--cwd DIR] [-e K=V]... -- CMD ARGS...

Kernel and initramfs are built once into ``/var/cache/contain/vm`` (``CONTAIN_VM_CACHE``)
and reused, keyed by the kernel package version and a hash of the init script.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import gzip
import hashlib
import lzma
import os
import platform
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
INIT_SCRIPT = HERE / "guest_init.sh"
QEMU = "qemu-system-x86_64"
BUSYBOX = Path("/bin/busybox")
VENV_PY = "/opt/contain/venv/bin/python"
DEFAULT_TIMEOUT = 900.0
# Modules the guest needs for virtio-pci + 9p + overlay, with their dependencies resolved
# from the modules' own "depends=" field (whatever is built in is simply not found).
WANTED_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
# Bump when the build recipe (not the init script, which is hashed) changes.
RECIPE_VERSION = "1"
MARKER_RE = re.compile(r"CONTAIN-VM-EXIT=(\d+)")
BEGIN_MARKER = "CONTAIN-VM-BEGIN"
INIT_FAILED_MARKER = "CONTAIN-VM-INIT-FAILED"
ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    # Python is 30-60x slower under emulation: skip plugin discovery.
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    # Tells tests they run in the guest (and keeps tests/vm from nesting VMs).
    "CONTAIN_IN_VM": "1",
}


class VMUnavailable(RuntimeError):
    """The VM cannot be started on this machine (missing QEMU, kernel, busybox...)."""


class VMError(RuntimeError):
    """The VM started but did not run the command to completion."""

    def __init__(self, message: str, output: str = "") -> None:
        tail = "\n".join(output.splitlines()[-40:])
        super().__init__(f"{message}\n--- last console lines ---\n{tail}" if output else message)
        self.output = output


class VMTimeout(VMError):
    pass


@dataclass(frozen=True)
class VMResult:
    returncode: int
    output: str  # the command's stdout+stderr (console), "\r\n" normalised to "\n"
    console: str = ""  # the whole console log, kernel messages included
    seconds: float = 0.0  # QEMU launch to exit


@dataclass(frozen=True)
class VMImage:
    kernel: Path  # uncompressed vmlinux (PVH direct boot) or vmlinuz
    initrd: Path
    kernel_version: str  # e.g. "6.1.0-57-amd64 6.1.192-3"


# ---------------------------------------------------------------------------------------
# Building the kernel and initramfs (cached)


def cache_dir() -> Path:
    return Path(os.environ.get("CONTAIN_VM_CACHE", "/var/cache/contain/vm"))


def check_host() -> None:
    """Raise VMUnavailable unless this machine can run the VM tier."""
    if platform.machine() != "x86_64":
        raise VMUnavailable(f"the VM tier needs an x86_64 host, not {platform.machine()}")
    if shutil.which(QEMU) is None:
        raise VMUnavailable(f"{QEMU} not found: run vm/provision.sh --test")
    if not BUSYBOX.is_file() or not _is_static_elf(BUSYBOX):
        raise VMUnavailable(
            f"a static {BUSYBOX} is needed (busybox-static): run vm/provision.sh --test"
        )


def _is_static_elf(path: Path) -> bool:
    """True if ``path`` is an ELF64 executable without a PT_INTERP program header."""
    with open(path, "rb") as f:
        hdr = f.read(64)
        if hdr[:4] != b"\x7fELF" or hdr[4] != 2:
            return False
        (phoff,) = struct.unpack_from("<Q", hdr, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", hdr, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _run(argv: Sequence[str], cwd: Path | None = None) -> str:
    try:
        p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise VMUnavailable(f"{argv[0]} not found ({e})") from e
    if p.returncode != 0:
        raise VMUnavailable(f"{shlex.join(argv)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


@functools.lru_cache(maxsize=1)
def kernel_package() -> tuple[str, str]:
    """(package name, version) of the kernel linux-image-amd64 currently points at."""
    override = os.environ.get("CONTAIN_VM_KERNEL_PACKAGE")  # e.g. linux-image-6.1.0-57-amd64
    if override:
        name = override
    else:
        out = _run(["apt-cache", "depends", "linux-image-amd64"])
        m = re.search(r"Depends:\s*(linux-image-[0-9][^\s:]*)", out)
        if not m:
            raise VMUnavailable(f"cannot resolve the kernel from linux-image-amd64:\n{out}")
        name = m.group(1)
    out = _run(["apt-cache", "policy", name])
    m = re.search(r"Candidate:\s*(\S+)", out)
    if not m or m.group(1) == "(none)":
        raise VMUnavailable(f"no candidate version for {name}:\n{out}")
    return name, m.group(1)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _init_hash() -> str:
    h = hashlib.sha256(RECIPE_VERSION.encode())
    h.update(INIT_SCRIPT.read_bytes())
    h.update(",".join(WANTED_MODULES).encode())
    h.update(hashlib.sha256(BUSYBOX.read_bytes()).digest())
    return h.hexdigest()[:16]


_IMAGE: VMImage | None = None


def ensure_image(log: Callable[[str], None] | None = None) -> VMImage:
    """Return the cached kernel + initramfs, building them if needed (takes a lock)."""
    log = log or (lambda s: None)
    check_host()
    global _IMAGE
    if (
        _IMAGE is not None
        and _IMAGE.kernel.is_relative_to(cache_dir())
        and _IMAGE.kernel.is_file()
        and _IMAGE.initrd.is_file()
    ):
        return _IMAGE
    name, version = kernel_package()
    kver = name.removeprefix("linux-image-")  # 6.1.0-57-amd64
    root = cache_dir()
    kdir = root / f"{kver}_{version}"
    initrd = kdir / f"initrd-{_init_hash()}.cpio.gz"
    with _locked(root / ".lock"):
        kernel = _find_kernel(kdir)
        if kernel is None or not (kdir / "modules").is_dir():
            _build_kernel(name, version, kdir, log)
            kernel = _find_kernel(kdir)
            assert kernel is not None
        if not initrd.is_file():
            log(f"contain-vm: building {initrd}")
            for old in kdir.glob("initrd-*.cpio.gz"):
                old.unlink()
            data = _build_initrd(kdir / "modules")
            tmp = initrd.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.rename(initrd)
    _IMAGE = VMImage(kernel=kernel, initrd=initrd, kernel_version=f"{kver} {version}")
    return _IMAGE


def _find_kernel(kdir: Path) -> Path | None:
    for n in ("vmlinux", "vmlinuz"):
        if (kdir / n).is_file():
            return kdir / n
    return None


def _build_kernel(name: str, version: str, kdir: Path, log: Callable[[str], None]) -> None:
    log(f"contain-vm: fetching {name}={version} into {kdir}")
    if kdir.exists():
        shutil.rmtree(kdir)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=kdir.parent))
    try:
        _run(["apt-get", "download", "-q", f"{name}={version}"], cwd=work)
        debs = list(work.glob("*.deb"))
        if len(debs) != 1:
            raise VMUnavailable(f"apt-get download gave {debs}")
        tree = work / "x"
        _run(["dpkg-deb", "-x", str(debs[0]), str(tree)])
        vmlinuz = next((tree / "boot").glob("vmlinuz-*"))
        out = work / "out"
        (out / "modules").mkdir(parents=True)
        order = _resolve_modules(tree / "lib" / "modules")
        for mod_name, path in order:
            (out / "modules" / f"{mod_name}.ko").write_bytes(_decompress_module(path))
        (out / "modules" / "order").write_text("".join(f"{m}\n" for m, _ in order))
        shutil.copy2(vmlinuz, out / "vmlinuz")
        for cfg in (tree / "boot").glob("config-*"):
            shutil.copy2(cfg, out / "config")
        vmlinux = extract_vmlinux(vmlinuz.read_bytes())
        if vmlinux is not None:
            (out / "vmlinux").write_bytes(vmlinux)
            (out / "vmlinuz").unlink()  # keep the cache small; vmlinux is what we boot
        else:
            log("contain-vm: could not extract vmlinux; booting vmlinuz (slower)")
        out.rename(kdir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _modinfo(data: bytes, key: str) -> list[str]:
    return [m.decode() for m in re.findall(rb"\x00" + key.encode() + rb"=([^\x00]*)", data)]


def _resolve_modules(moddir: Path) -> list[tuple[str, Path]]:
    """WANTED_MODULES and their dependencies, dependencies first."""
    index: dict[str, Path] = {}
    for p in moddir.rglob("*.ko*"):
        n = p.name.split(".ko")[0]
        index[n] = index[n.replace("-", "_")] = p
    order: list[tuple[str, Path]] = []
    seen: set[str] = set()

    def visit(n: str) -> None:
        n = n.replace("-", "_")
        if n in seen:
            return
        seen.add(n)
        if n not in index:  # built into the kernel
            return
        data = _decompress_module(index[n])
        for dep in ",".join(_modinfo(data, "depends")).split(","):
            if dep:
                visit(dep)
        order.append((n, index[n]))

    for n in WANTED_MODULES:
        visit(n)
    return order


def _decompress_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return data


def extract_vmlinux(image: bytes) -> bytes | None:
    """Uncompressed ELF vmlinux from a bzImage (as scripts/extract-vmlinux does)."""
    magics: list[tuple[bytes, Callable[[bytes], bytes]]] = [
        (b"\xfd7zXZ\x00", lambda d: lzma.LZMADecompressor().decompress(d)),
        (b"\x1f\x8b\x08", lambda d: zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(d)),
        (b"\x28\xb5\x2f\xfd", _zstd_decompress),
    ]
    for magic, decompress in magics:
        start = 0
        while (pos := image.find(magic, start)) != -1:
            start = pos + 1
            try:
                out = decompress(image[pos:])
            except Exception:
                continue
            if out[:4] == b"\x7fELF":
                return out
    return None


def _zstd_decompress(data: bytes) -> bytes:
    p = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True)
    return p.stdout


def _build_initrd(moddir: Path) -> bytes:
    cpio = _Cpio()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "mnt", "modules"):
        cpio.add(d, 0o040755)
    cpio.add("dev/console", 0o020600, rdev=(5, 1))
    cpio.add("dev/null", 0o020666, rdev=(1, 3))
    cpio.add("bin/busybox", 0o100755, BUSYBOX.read_bytes())
    cpio.add("bin/sh", 0o120777, b"busybox")
    cpio.add("init", 0o100755, INIT_SCRIPT.read_bytes())
    for p in sorted(moddir.iterdir()):
        cpio.add(f"modules/{p.name}", 0o100644, p.read_bytes())
    return gzip.compress(cpio.finish(), compresslevel=6, mtime=0)


class _Cpio:
    """Writer for the "newc" cpio format the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._ino = 1

    @staticmethod
    def _pad(n: int) -> bytes:
        return b"\0" * ((4 - n % 4) % 4)

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        nameb = name.encode() + b"\0"
        fields = (
            self._ino,
            mode,
            0,
            0,
            2 if mode & 0o040000 else 1,
            0,
            len(data),
            0,
            0,
            rdev[0],
            rdev[1],
            len(nameb),
            0,
        )
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._parts += [hdr, nameb, self._pad(len(hdr) + len(nameb)), data, self._pad(len(data))]
        self._ino += 1

    def finish(self) -> bytes:
        self._ino = 0
        self.add("TRAILER!!!", 0)
        return b"".join(self._parts)


# ---------------------------------------------------------------------------------------
# Running


def run_in_vm(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    echo: Callable[[str], None] | None = None,
) -> VMResult:
    """Boot a fresh VM, run ``argv`` in ``cwd`` as root, return its status and output.

    The guest's environment is BASE_ENV updated with ``env``. ``cwd`` and the program must
    exist on the host (the guest sees the host's root read-only, writable through an
    overlay whose changes vanish with the VM). stdin is /dev/null; stdout and stderr are
    merged. ``echo`` receives console text as it arrives (for live progress).
    """
    if not argv:
        raise ValueError("empty argv")
    return run_script_in_vm(shlex.join(argv), cwd=cwd, env=env, timeout=timeout, echo=echo)


def run_script_in_vm(
    script: str,
    *,
    cwd: str,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    echo: Callable[[str], None] | None = None,
) -> VMResult:
    """Like run_in_vm, but run a /bin/sh script: several commands in one boot."""
    image = ensure_image(log=lambda s: print(s, file=sys.stderr))
    full_env = dict(BASE_ENV)
    full_env.update(env or {})
    _sweep_stale_tempdirs()
    tmp = Path(tempfile.mkdtemp(prefix=f"contain-vm-{os.getpid()}-"))
    try:
        os.chmod(tmp, 0o755)
        (tmp / "cmd.sh").write_text(script + "\n")
        lines = ["set -e", f"cd {shlex.quote(cwd)}"]
        lines.append(
            "exec env -i "
            + " ".join(shlex.quote(f"{k}={v}") for k, v in full_env.items())
            + f" /bin/sh {shlex.quote(str(tmp / 'cmd.sh'))}"
        )
        (tmp / "run.sh").write_text("\n".join(lines) + "\n")
        return _boot(image, tmp / "run.sh", timeout, echo)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sweep_stale_tempdirs() -> None:
    """Remove temp dirs left by runs that were SIGKILLed (their pid is in the name)."""
    for d in Path(tempfile.gettempdir()).glob("contain-vm-*-*"):
        m = re.fullmatch(r"contain-vm-(\d+)-\w+", d.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            shutil.rmtree(d, ignore_errors=True)


def qemu_argv(image: VMImage, script: Path) -> list[str]:
    append = f"console=ttyS0 panic=-1 quiet contain.script={script}"
    if any(c.isspace() for c in str(script)):
        raise ValueError(f"script path must not contain spaces: {script}")
    return [
        QEMU,
        "-accel",
        "tcg",
        # QEMU's default CPU model lacks instructions that numpy's wheels use (matplotlib
        # imports it): "invalid opcode" kills a notebook kernel in the guest otherwise.
        "-cpu",
        "max",
        "-m",
        os.environ.get("CONTAIN_VM_MEMORY", "2048"),
        "-smp",
        "2",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-vga",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
        "-kernel",
        str(image.kernel),
        "-initrd",
        str(image.initrd),
        "-append",
        append,
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
    ]


def _clean(text: str) -> str:
    return ANSI_RE.sub("", text.replace("\r\n", "\n").replace("\r", ""))


def _boot(
    image: VMImage, script: Path, timeout: float, echo: Callable[[str], None] | None
) -> VMResult:
    argv = qemu_argv(image, script)
    chunks: list[bytes] = []
    t0 = time.monotonic()
    # Own session: a Ctrl-C on the terminal reaches us (and our finally) but not QEMU.
    # PR_SET_PDEATHSIG: if we are killed outright (SIGKILL, SIGTERM without handler), QEMU
    # dies with us instead of running on.
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    try:

        def reader() -> None:
            assert proc.stdout is not None
            while data := os.read(proc.stdout.fileno(), 65536):
                chunks.append(data)
                if echo:
                    echo(data.decode("utf-8", "replace"))

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            t.join(5)
            raise VMTimeout(
                f"VM timed out after {timeout:.0f} s",
                _clean(b"".join(chunks).decode("utf-8", "replace")),
            ) from None
        t.join(10)
    finally:
        _kill(proc)
        if proc.stdout:
            proc.stdout.close()
    seconds = time.monotonic() - t0
    console = _clean(b"".join(chunks).decode("utf-8", "replace"))
    if INIT_FAILED_MARKER in console:
        raise VMError("the guest's init failed", console)
    matches = list(MARKER_RE.finditer(console))
    begin = console.find(BEGIN_MARKER + "\n")
    if not matches or begin < 0:
        raise VMError(f"no exit marker on the console (QEMU exited {proc.returncode})", console)
    last = matches[-1]
    output = console[begin + len(BEGIN_MARKER) + 1 : last.start()]
    output = output.removesuffix("\n")  # the one init prints before the marker
    return VMResult(int(last.group(1)), output, console, seconds)


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---------------------------------------------------------------------------------------
# CLI


def main(args: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], usage="%(prog)s [options] -- CMD [ARGS...]"
    )
    ap.add_argument("--cwd", default=os.getcwd(), help="working directory in the guest")
    ap.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    ap.add_argument("--build", action="store_true", help="only build the cached image")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the whole console")
    ap.add_argument("cmd", nargs="*")
    ns = ap.parse_args(args)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)  # clean up (finally blocks) on kill, too
    try:
        if ns.build:
            img = ensure_image(log=lambda s: print(s, file=sys.stderr))
            print(f"{img.kernel}\n{img.initrd}")
            return 0
        if not ns.cmd:
            ap.error("no command given")
        env = dict(kv.split("=", 1) for kv in ns.env)

        def echo(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        r = run_in_vm(
            ns.cmd, cwd=ns.cwd, env=env, timeout=ns.timeout, echo=echo if ns.verbose else None
        )
    except (VMUnavailable, VMError) as e:
        print(f"contain-vm: {e}", file=sys.stderr)
        return 125
    if not ns.verbose:
        sys.stdout.write(r.output + ("\n" if r.output and not r.output.endswith("\n") else ""))
    print(f"contain-vm: exit status {r.returncode} after {r.seconds:.1f} s", file=sys.stderr)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
