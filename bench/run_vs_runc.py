"""`contain run` against `runc run`: the same busybox `true`, alternating, in one run.

    sudo /opt/contain/venv/bin/python bench/run_vs_runc.py --runs 50

Both runtimes start ``/bin/true`` from the same busybox root filesystem with the same
namespaces (mnt, uts, ipc, pid, net, cgroup; no network set-up) and a writable root:
contain gives each container a fresh overlay writable layer (``--rm``), runc gets an
OCI bundle made with ``runc spec`` whose root is a copy of the same tree, made
writable (``root.readonly=false``) because contain's root is writable too.

The runs alternate (contain, runc, runc, contain, ...) so that a busy machine slows
both alike. Wall time is measured around each process from fork to reap; peak memory
is ``ru_maxrss`` from wait4(2): the largest resident set of any process in the tree
(the runtime itself, its children, the command). Output: median, p90 and mean per
runtime, the ratio of the medians (contain / runc; <= 1.0 means contain is at least
as fast), and the peak RSS. Nothing is left behind: the bundle, the state dir and
any runc container are removed, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PREFIX = "contain-bench-"


def machine() -> str:
    """What the numbers were measured on: CPUs, kernel, cgroup mode, runc version."""
    with open("/proc/self/mountinfo") as f:
        kinds = {line.split(" - ")[1].split()[0] for line in f}
    cgroup = ("hybrid (v1 controllers + v2)" if {"cgroup", "cgroup2"} <= kinds
              else "v2 (unified)" if "cgroup2" in kinds else "v1")
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    runc = subprocess.run(["runc", "--version"], capture_output=True, text=True).stdout.split()
    return (f"{os.cpu_count()} vCPU ({model}), kernel {platform.release()}, cgroups {cgroup}, "
            f"runc {runc[2] if len(runc) > 2 else '?'}, Python {platform.python_version()}")


def make_bundle(rootfs: Path, bundle: Path) -> None:
    """An OCI bundle for runc: ``runc spec``, then match what ``contain run`` does."""
    bundle.mkdir()
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["/bin/true"]
    config["process"]["terminal"] = False
    config["root"]["readonly"] = False  # contain's overlay root is writable
    spaces = config["linux"]["namespaces"]
    if not any(ns["type"] == "cgroup" for ns in spaces):  # contain isolates it by default
        spaces.append({"type": "cgroup"})
    (bundle / "config.json").write_text(json.dumps(config, indent=2))


def timed(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Run argv; return its wall time in seconds (fork to reap)."""
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], list(argv), env if env is not None else dict(os.environ))
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed with status "
                         f"{os.waitstatus_to_exitcode(status)}")
    return elapsed


def peak_rss(argv: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Peak RSS in KiB of the largest process in argv's tree, from wait4(2)'s ru_maxrss.

    Measured through GNU time (or busybox time), a small process: a child forked from
    this Python process would inherit its ~20 MiB high-water mark, because exec(2)
    records the old address space's peak into the process's ru_maxrss.
    """
    tool = ["/usr/bin/time", "-f", "%M"] if os.path.exists("/usr/bin/time") \
        else ["busybox", "time", "-f", "%M"]
    done = subprocess.run([*tool, *argv], env=env, capture_output=True, text=True, check=True)
    return int(done.stderr.strip().splitlines()[-1])


def summary(name: str, times: list[float], rss: list[int]) -> dict[str, float]:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    row = {"median_ms": 1000 * statistics.median(times), "p90_ms": 1000 * p90,
           "mean_ms": 1000 * statistics.fmean(times),
           "peak_rss_mib": max(rss) / 1024, "median_rss_mib": statistics.median(rss) / 1024}
    print(f"{name:<8} median {row['median_ms']:6.1f} ms   p90 {row['p90_ms']:6.1f} ms   "
          f"mean {row['mean_ms']:6.1f} ms   peak RSS {row['peak_rss_mib']:5.1f} MiB "
          f"(median {row['median_rss_mib']:.1f})")
    return row


def contain_command() -> list[str]:
    """The installed ``contain`` console script next to this interpreter, else -m contain."""
    script = Path(sys.executable).parent / "contain"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "contain"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="runs of each runtime")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each first")
    parser.add_argument("--rootfs", type=Path, help="root filesystem (default: contain's busybox)")
    parser.add_argument("--memory-runs", type=int, default=5,
                        help="extra runs of each under GNU time for the peak RSS")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: sudo /opt/contain/venv/bin/python bench/run_vs_runc.py")
    if shutil.which("runc") is None:
        parser.error("runc is not installed: apt-get install runc")
    sys.path.insert(0, str(REPO))
    from contain import rootfs
    from contain.runtime.spec import data_root

    base = args.rootfs or rootfs.default_rootfs(data_root())
    work = Path(tempfile.mkdtemp(prefix=PREFIX))
    runc_ids: list[str] = []
    try:
        bundle = work / "bundle"
        make_bundle(base, bundle)
        state = work / "state"
        state.mkdir()
        env = {**os.environ, "CONTAIN_STATE": str(state)}
        # Measure contain as installed: with its bytecode compiled (pip does this for a
        # regular install; an editable one compiles on first use unless
        # PYTHONDONTWRITEBYTECODE is set, which would make every start compile again).
        import compileall

        compileall.compile_dir(str(REPO / "contain"), quiet=1)
        contain = [*contain_command(), "run", "--rm", "--rootfs", str(base), "/bin/true"]
        runc = shutil.which("runc") or "runc"

        def runc_argv() -> list[str]:
            cid = f"{PREFIX}{os.getpid()}-{len(runc_ids)}"
            runc_ids.append(cid)
            return [runc, "run", "--bundle", str(bundle), cid]

        for _ in range(args.warmup):
            timed(contain, env)
            timed(runc_argv())
        results: dict[str, tuple[list[float], list[int]]] = {"contain": ([], []), "runc": ([], [])}
        for i in range(args.runs):
            order = [("contain", lambda: timed(contain, env)), ("runc", lambda: timed(runc_argv()))]
            for name, fn in order if i % 2 == 0 else reversed(order):
                results[name][0].append(fn())
        for _ in range(args.memory_runs):
            results["contain"][1].append(peak_rss(contain, env))
            results["runc"][1].append(peak_rss(runc_argv()))
        print(f"machine: {machine()}")
        print(f"contain: {' '.join(contain)}")
        print(f"runc:    runc run --bundle BUNDLE ID   ({args.runs} runs each, alternating)")
        rows = {name: summary(name, *results[name]) for name in ("contain", "runc")}
        ratio = rows["contain"]["median_ms"] / rows["runc"]["median_ms"]
        print(f"ratio    contain/runc median = {ratio:.2f} "
              f"({'contain is at least as fast' if ratio <= 1.0 else 'contain is slower'})")
        if args.json:
            args.json.write_text(json.dumps({"machine": machine(), "runs": args.runs,
                                             "ratio": ratio, **rows}, indent=2))
        leftovers = os.listdir(state)
        if leftovers:
            print(f"bench: contain left state behind: {leftovers}", file=sys.stderr)
            return 1
        return 0
    finally:
        for cid in runc_ids[-2:]:  # runc run removes its container on exit; make sure
            subprocess.run([runc_path(), "delete", "--force", cid], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def runc_path() -> str:
    return shutil.which("runc") or "runc"


if __name__ == "__main__":
    sys.exit(main())
