"""Layer tars without root: option strings, diff of plain trees, apply with whiteouts,
opaque directories, symlinks and hard links, and tars that try to escape.

The round trips through a real overlay (char-device whiteouts, trusted.* xattrs) need
root and live in tests/kernel/test_overlay.py.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from contain import overlay

UID, GID = os.getuid(), os.getgid()


def make_tar(entries: list[tuple[str, str, str]]) -> io.BytesIO:
    """entries: (name, kind, payload) with kind file|dir|symlink|hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.uid, info.gid, info.mtime, info.mode = UID, GID, 1_000_000, 0o644
            data = None
            if kind == "file":
                raw = payload.encode()
                info.size = len(raw)
                data = io.BytesIO(raw)
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            tar.addfile(info, data)
    buf.seek(0)
    return buf


def tree(root: Path) -> dict[str, tuple[str, object]]:
    """A comparable picture of a directory tree: kind and content/target/mode per path."""
    out: dict[str, tuple[str, object]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            st = path.lstat()
            if path.is_symlink():
                out[rel] = ("symlink", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir", oct(st.st_mode & 0o7777))
            else:
                out[rel] = ("file", (path.read_bytes(), oct(st.st_mode & 0o7777), int(st.st_mtime)))
    return out


# --- option strings --------------------------------------------------------------------
def test_lowerdir_option_keeps_the_order_leftmost_on_top() -> None:
    assert overlay.lowerdir_option(["/top", "/mid", "/base"]) == "lowerdir=/top:/mid:/base"


def test_options_with_and_without_a_writable_layer() -> None:
    assert overlay.options(["/a"]) == "lowerdir=/a"
    assert overlay.options(["/a", "/b"], "/u", "/w", userxattr=True) == (
        "lowerdir=/a:/b,upperdir=/u,workdir=/w,userxattr")


def test_whiteout_names() -> None:
    assert overlay.whiteout_name("etc/hostname") == "etc/.wh.hostname"
    assert overlay.whiteout_name("/bin/ls") == "bin/.wh.ls"
    assert overlay.whiteout_name("top") == ".wh.top"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", "a/b/../../../etc"])
def test_safe_name_refuses_escapes(bad: str) -> None:
    with pytest.raises(overlay.UnsafeLayerError):
        overlay.safe_name(bad)


def test_safe_name_normalises_harmless_names() -> None:
    assert overlay.safe_name("./a//b/./c") == "a/b/c"


def test_too_many_lowers_is_a_clear_error(tmp_path: Path) -> None:
    layers = [str(tmp_path)] * (overlay.MAX_LOWERS + 1)
    with pytest.raises(overlay.OverlayError, match="at most 500"):
        overlay.mount(layers, tmp_path)


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bad_layers_are_named(tmp_path: Path, kind: str) -> None:
    layer = tmp_path / "layer"
    if kind == "file":
        layer.write_text("not a directory")
    with pytest.raises(overlay.OverlayError, match=str(layer)):
        overlay.mount([layer], tmp_path)


# --- diff of a plain tree (no whiteouts: those need root) ---------------------------
def test_diff_then_apply_reproduces_files_dirs_symlinks_and_hard_links(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/hostname").write_text("box\n")
    (upper / "bin").mkdir()
    (upper / "bin/tool").write_text("#!/bin/sh\n")
    os.chmod(upper / "bin/tool", 0o4755)  # setuid survives
    os.link(upper / "bin/tool", upper / "bin/tool2")
    (upper / "bin/sh").symlink_to("/bin/busybox")
    os.utime(upper / "etc/hostname", (1_234_567, 1_234_567))
    layer = tmp_path / "layer.tar"
    overlay.diff(upper, layer)
    with tarfile.open(layer) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/tool2"].islnk() and members["bin/tool2"].linkname == "bin/tool"
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert list(members) == sorted(members), "entries are sorted (reproducible)"

    target = tmp_path / "target"
    target.mkdir()
    overlay.apply(layer, target)
    assert tree(target) == tree(upper)
    assert os.stat(target / "bin/tool").st_ino == os.stat(target / "bin/tool2").st_ino


def test_diff_with_fixed_mtime_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    (upper / "d/f").write_text("x")
    one, two = io.BytesIO(), io.BytesIO()
    overlay.diff(upper, one, mtime=0)
    os.utime(upper / "d/f", (99, 99))
    overlay.diff(upper, two, mtime=0)
    assert one.getvalue() == two.getvalue()


# --- apply: whiteouts and opaque directories -------------------------------------------
def base_tree(root: Path) -> None:
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root\n")
    (root / "etc/motd").write_text("hello\n")
    (root / "data").mkdir()
    (root / "data/old1").write_text("1")
    (root / "data/sub").mkdir()
    (root / "data/sub/old2").write_text("2")


def test_apply_whiteout_deletes_a_file_and_a_directory(tmp_path: Path) -> None:
    base_tree(tmp_path)
    overlay.apply(make_tar([("etc/.wh.motd", "file", ""), (".wh.data", "file", "")]), tmp_path)
    assert not (tmp_path / "etc/motd").exists()
    assert not (tmp_path / "data").exists()
    assert (tmp_path / "etc/passwd").read_text() == "root\n"
    assert not (tmp_path / "etc/.wh.motd").exists(), "a whiteout is never extracted itself"


def test_apply_opaque_dir_hides_old_children_but_keeps_new_ones(tmp_path: Path) -> None:
    base_tree(tmp_path)
    overlay.apply(make_tar([("data", "dir", ""), ("data/.wh..wh..opq", "file", ""),
                            ("data/new", "file", "fresh")]), tmp_path)
    assert sorted(os.listdir(tmp_path / "data")) == ["new"]
    # The marker may also come after the new entries (order is not guaranteed).
    (tmp_path / "again").mkdir()
    base_tree(tmp_path / "again")
    overlay.apply(make_tar([("data/new", "file", "fresh"), ("data/.wh..wh..opq", "file", "")]),
                  tmp_path / "again")
    assert sorted(os.listdir(tmp_path / "again/data")) == ["new"]


def test_apply_replaces_a_file_with_a_directory_and_back(tmp_path: Path) -> None:
    base_tree(tmp_path)
    overlay.apply(make_tar([("etc/motd", "dir", ""), ("data", "file", "now a file")]), tmp_path)
    assert (tmp_path / "etc/motd").is_dir()
    assert (tmp_path / "data").read_text() == "now a file"


def test_apply_through_a_symlink_stays_inside_the_root(tmp_path: Path) -> None:
    """A layer with ``lib -> /usr/lib`` then ``lib/x`` writes root/usr/lib/x, never /usr/lib."""
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    overlay.apply(make_tar([("lib", "symlink", "/usr/lib"), ("lib/x", "file", "in root")]), root)
    assert (root / "usr/lib/x").read_text() == "in root"


# --- malicious layers ------------------------------------------------------------------
@pytest.mark.parametrize("entries", [
    [("../escape", "file", "x")],
    [("/abs-escape", "file", "x")],
    [("a/../../escape", "file", "x")],
    [(".wh..", "file", "")],
], ids=["dotdot", "absolute", "nested-dotdot", "whiteout-dotdot"])
def test_malicious_names_are_refused(tmp_path: Path, entries: list[tuple[str, str, str]]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(overlay.UnsafeLayerError):
        overlay.apply(make_tar(entries), root)
    assert not (tmp_path / "escape").exists()
    assert root.exists()


def test_symlink_escape_is_confined(tmp_path: Path) -> None:
    """``evil -> ../../outside`` then ``evil/pwned``: lands inside root, not in outside/."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    overlay.apply(make_tar([("evil", "symlink", "../../outside"),
                            ("evil/pwned", "file", "gotcha")]), root)
    assert not (outside / "pwned").exists()
    assert (root / "outside/pwned").read_text() == "gotcha"


def test_absolute_symlink_escape_is_confined(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    overlay.apply(make_tar([("evil", "symlink", str(outside)),
                            ("evil/pwned", "file", "gotcha")]), root)
    assert not (outside / "pwned").exists()


def test_hard_link_to_a_host_file_is_refused_or_confined(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(overlay.UnsafeLayerError):
        overlay.apply(make_tar([("stolen", "hardlink", "../secret")]), root)
    # Through a symlink: the link target resolves inside root, where there is no secret.
    with pytest.raises(FileNotFoundError):
        overlay.apply(make_tar([("s", "symlink", str(tmp_path)),
                                ("stolen", "hardlink", "s/secret")]), root)
    assert not (root / "stolen").exists()
    assert secret.stat().st_nlink == 1


def test_writing_through_an_existing_symlink_replaces_the_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").symlink_to(outside)
    overlay.apply(make_tar([("f", "file", "new")]), root)
    assert outside.read_text() == "untouched"
    assert (root / "f").read_text() == "new" and not (root / "f").is_symlink()


def test_apply_of_a_missing_layer_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(overlay.OverlayError, match="not a file"):
        overlay.apply(tmp_path / "nope.tar", tmp_path)


@pytest.mark.parametrize("entries", [
    [("d", "dir", ""), (".wh.d", "file", ""), ("d", "symlink", "HOST/victim")],
    [("d", "dir", ""), ("d", "symlink", "HOST/victim")],
    [("d", "dir", ""), ("d/sub", "dir", ""), (".wh.d", "file", ""), ("d", "symlink", "HOST")],
], ids=["whiteout-then-symlink", "replaced-by-symlink", "parent-replaced-by-symlink"])
def test_directory_mtimes_never_land_outside_the_root(
        tmp_path: Path, entries: list[tuple[str, str, str]]) -> None:
    """Dir mtimes are set last; by then ``d`` (or its parent) may be a symlink to the host."""
    host = tmp_path / "host"
    (host / "sub").mkdir(parents=True)
    (host / "victim").write_text("host file")
    for path in (host / "victim", host / "sub", host):
        os.utime(path, (2_000_000_000, 2_000_000_000))
    root = tmp_path / "root"
    root.mkdir()
    entries = [(n, k, p.replace("HOST", str(host))) for n, k, p in entries]
    overlay.apply(make_tar([("kept", "dir", ""), ("kept/f", "file", "x"), *entries]), root)
    for path in (host / "victim", host / "sub", host):
        assert path.stat().st_mtime == 2_000_000_000, path
        assert path.stat().st_atime == 2_000_000_000, path
    assert (root / "d").is_symlink()
    assert (root / "kept").stat().st_mtime == 1_000_000  # real directories still get theirs
