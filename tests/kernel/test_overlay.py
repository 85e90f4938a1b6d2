"""Real overlay mounts (in children with their own mount namespace) and `contain run` on
copy-on-write layers: copy-up, whiteouts, opaque dirs, diff/apply round trips, many
layers, concurrent containers on one base, and bad input."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contain import linux, overlay
from contain.process import call_in_child


def in_mount_ns(fn: Callable[..., Any], *args: Any) -> Any:
    """Run fn in a child with a private mount namespace: its mounts die with it."""

    def body() -> Any:
        linux.unshare(linux.CLONE_NEWNS)
        linux.make_private("/")
        return fn(*args)

    return call_in_child(body)


def fingerprint(root: Path) -> str:
    """A hash of every path, kind, mode, owner, content and link target under root."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest.update(f"{os.path.relpath(path, root)}|{st.st_mode}|{st.st_uid}|"
                          f"{st.st_gid}|{st.st_mtime_ns}".encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()


def picture(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = ("symlink", os.readlink(path))
            elif os.path.isdir(path):
                out[rel] = ("dir", st.st_mode, st.st_uid)
            else:
                with open(path, "rb") as f:
                    out[rel] = ("file", f.read(), st.st_mode, st.st_uid, st.st_gid)
    return out


@pytest.fixture
def layers(tmp_path: Path) -> dict[str, Path]:
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/hostname").write_text("base\n")
    (lower / "etc/motd").write_text("welcome\n")
    (lower / "data/sub").mkdir(parents=True)
    (lower / "data/keep").write_text("old")
    (lower / "data/sub/deep").write_text("old")
    (lower / "bin").mkdir()
    (lower / "bin/tool").write_text("tool")
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    return {"lower": lower, "upper": upper, "work": work, "merged": merged}


def change_things(lower: Path, upper: Path, work: Path, merged: Path) -> None:
    overlay.mount([lower], merged, upper, work)
    (merged / "etc/hostname").write_text("changed\n")  # copy-up
    os.unlink(merged / "etc/motd")  # whiteout
    shutil.rmtree(merged / "data")  # a directory deleted...
    (merged / "data").mkdir()  # ...and made again: opaque
    (merged / "data/new").write_text("new")
    (merged / "bin/sh").symlink_to("/bin/busybox")
    (merged / "bin/big").write_text("x" * 10)
    os.link(merged / "bin/big", merged / "bin/big2")
    os.chown(merged / "bin/big", 1234, 4321)
    os.chmod(merged / "bin/big", 0o4750)


def test_copy_up_whiteouts_and_opaque_dirs_in_the_upper_dir(
        layers: dict[str, Path], no_new_mounts: None) -> None:
    before = fingerprint(layers["lower"])
    in_mount_ns(change_things, *layers.values())
    upper = layers["upper"]
    assert (upper / "etc/hostname").read_text() == "changed\n"
    assert (layers["lower"] / "etc/hostname").read_text() == "base\n"
    assert overlay.is_whiteout(os.lstat(upper / "etc/motd"))
    assert overlay.is_opaque(str(upper / "data"))
    assert fingerprint(layers["lower"]) == before, "the lower layer never changes"


def test_diff_apply_round_trip_equals_the_merged_view(
        layers: dict[str, Path], tmp_path: Path, no_new_mounts: None) -> None:
    in_mount_ns(change_things, *layers.values())

    def merged_view() -> dict[str, object]:
        overlay.mount([layers["lower"]], layers["merged"], layers["upper"], layers["work"])
        return picture(layers["merged"])

    expected = in_mount_ns(merged_view)
    layer = tmp_path / "layer.tar"
    overlay.diff(layers["upper"], layer)
    import tarfile

    with tarfile.open(layer) as tar:
        names = tar.getnames()
    assert "etc/.wh.motd" in names and "data/.wh..wh..opq" in names
    assert "bin/big2" in names
    applied = tmp_path / "applied"
    shutil.copytree(layers["lower"], applied, symlinks=True)
    overlay.apply(layer, applied)
    assert picture(applied) == expected
    assert os.stat(applied / "bin/big").st_ino == os.stat(applied / "bin/big2").st_ino
    assert os.stat(applied / "bin/big").st_mode & 0o7777 == 0o4750


def test_leftmost_lower_wins(tmp_path: Path, no_new_mounts: None) -> None:
    top, bottom, merged = tmp_path / "top", tmp_path / "bottom", tmp_path / "m"
    for d in (top, bottom, merged):
        d.mkdir()
    (top / "f").write_text("top")
    (bottom / "f").write_text("bottom")
    (bottom / "only").write_text("bottom")

    def read() -> tuple[str, str]:
        overlay.mount([top, bottom], merged)
        return (merged / "f").read_text(), (merged / "only").read_text()

    assert in_mount_ns(read) == ("top", "bottom")


def test_many_layers_beyond_a_page_of_options(tmp_path: Path, no_new_mounts: None) -> None:
    """200 layers with long names: > 4095 bytes absolute, mounted via relative paths."""
    base = tmp_path / ("long-directory-name-" * 3)
    layers = []
    for i in range(200):
        layer = base / f"l{i:03d}"
        layer.mkdir(parents=True)
        (layer / f"file{i}").write_text(str(i))
        layers.append(layer)
    (layers[0] / "file199").write_text("top wins")
    merged = tmp_path / "merged"
    merged.mkdir()
    assert len(overlay.options([str(p) for p in layers])) > overlay.PAGE_LIMIT

    def mount_and_read() -> tuple[str, str, int, str]:
        used = overlay.mount(layers, merged)
        return (merged / "file0").read_text(), (merged / "file199").read_text(), \
            len(os.listdir(merged)), used

    first, last, count, used = in_mount_ns(mount_and_read)
    assert (first, last, count) == ("0", "top wins", 200)
    assert not used.startswith("lowerdir=/"), "relative paths were used"


def test_unmount(layers: dict[str, Path], no_new_mounts: None) -> None:
    def cycle() -> tuple[bool, bool]:
        overlay.mount([layers["lower"]], layers["merged"], layers["upper"], layers["work"])
        mounted = (layers["merged"] / "etc/hostname").exists()
        overlay.unmount(layers["merged"])
        return mounted, (layers["merged"] / "etc/hostname").exists()

    assert in_mount_ns(cycle) == (True, False)


# --- contain run on layers ------------------------------------------------------------------
@pytest.fixture
def base_copy(busybox_rootfs: Path, tmp_path: Path) -> Path:
    base = tmp_path / "base"
    shutil.copytree(busybox_rootfs, base, symlinks=True)
    return base


def test_two_containers_on_one_base_each_see_their_own_hostname_file(
        base_copy: Path, contain_env: dict[str, str], no_new_mounts: None) -> None:
    before = fingerprint(base_copy)
    script = "echo $0 > /etc/hostname; sleep 0.5; cat /etc/hostname"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "contain", "run", "--rm", "--rootfs", str(base_copy),
         "/bin/sh", "-c", script, name], env=contain_env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("one", "two")]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [o[0].strip() for o in outs] == ["one", "two"], outs
    assert fingerprint(base_copy) == before, "the base layer is byte-for-byte unchanged"
    assert os.listdir(contain_env["CONTAIN_STATE"]) == [], "--rm removed both writable layers"


def test_deleting_a_base_file_is_private_to_the_container(
        base_copy: Path, contain: Any, no_new_mounts: None) -> None:
    # Debian's static busybox sh runs applets without a PATH search ("standalone shell"),
    # so a bare `ls` would still work; `/bin/ls` and `which ls` look at the filesystem.
    first = contain("run", "--rm", "--rootfs", str(base_copy), "/bin/sh", "-c",
                    "rm /bin/ls; which ls || /bin/ls")
    assert first.returncode == 127, first
    assert "not found" in first.stderr
    again = contain("run", "--rm", "--rootfs", str(base_copy), "/bin/ls", "/bin/ls")
    assert again.returncode == 0 and again.stdout.strip() == "/bin/ls"
    assert (base_copy / "bin/ls").is_symlink()


def test_without_rm_the_writable_layer_stays_until_contain_rm(
        base_copy: Path, contain: Any, contain_env: dict[str, str]) -> None:
    result = contain("run", "--name", "kept", "--rootfs", str(base_copy),
                     "/bin/sh", "-c", "echo kept > /root/note")
    assert result.returncode == 0, result.stderr
    layer = Path(contain_env["CONTAIN_STATE"]) / "kept"
    assert (layer / "upper/root/note").read_text() == "kept\n"
    assert not (base_copy / "root/note").exists()
    assert contain("rm", "kept").returncode == 0
    assert not layer.exists()


@pytest.mark.parametrize("problem", ["missing", "file"])
def test_bad_rootfs_is_one_line_and_leaves_nothing(
        problem: str, tmp_path: Path, contain: Any, contain_env: dict[str, str],
        no_new_mounts: None) -> None:
    rootfs = tmp_path / "nope"
    if problem == "file":
        rootfs.write_text("not a directory")
    result = contain("run", "--rm", "--rootfs", str(rootfs), "/bin/true")
    assert result.returncode == 125
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("contain: ") and str(rootfs) in lines[0]
    assert os.listdir(contain_env["CONTAIN_STATE"]) == []


def test_unwritable_state_dir_is_one_line_and_leaves_nothing(
        tmp_path: Path, contain_env: dict[str, str], no_new_mounts: None) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**contain_env, "CONTAIN_STATE": str(blocker / "state")}
    result = subprocess.run([sys.executable, "-m", "contain", "run", "--rm", "/bin/true"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 125
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "CONTAIN_STATE" in lines[0], result.stderr
    assert blocker.read_text() == ""


def test_a_failing_step_undoes_the_layer(
        base_copy: Path, contain: Any, contain_env: dict[str, str], no_new_mounts: None) -> None:
    """The overlay cannot mount (the base has a ':' in its path): nothing may remain."""
    odd = base_copy.parent / "odd:name"
    base_copy.rename(odd)
    result = contain("run", "--rm", "--rootfs", str(odd), "/bin/true")
    assert result.returncode == 125 and "rename the directory" in result.stderr
    assert os.listdir(contain_env["CONTAIN_STATE"]) == []
