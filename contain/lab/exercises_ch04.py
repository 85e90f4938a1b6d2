"""Chapter 4's exercises: overlay's option string, and the whiteout of a deleted file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from contain.lab.exercises import exercise


@exercise("04.lowerdir",
          hint="lowerdir lists the TOPMOST layer first (leftmost wins), so reverse the build "
               "order; then upperdir=...,workdir=... separated by commas")
def check_lowerdir(fn: Callable[[list[str], str, str], str]) -> None:
    """Write overlay_options(layers, upper, work): layers are given base first, as built."""
    from contain import linux
    from contain.process import call_in_child

    with tempfile.TemporaryDirectory(prefix="contain-lab-ex04-") as tmp:
        root = Path(tmp)
        layers = []
        for i, name in enumerate(("base", "middle", "top")):
            layer = root / name
            layer.mkdir()
            (layer / "who").write_text(name)  # the same file in every layer
            (layer / f"only-{name}").write_text(str(i))
            layers.append(str(layer))
        upper, work, merged = root / "upper", root / "work", root / "merged"
        for d in (upper, work, merged):
            d.mkdir()
        options = fn(list(layers), str(upper), str(work))
        assert isinstance(options, str), f"return the option string, not {type(options).__name__}"

        def mount_and_look() -> tuple[str, list[str]]:
            linux.unshare(linux.CLONE_NEWNS)  # a child's own mount namespace: dies with it
            linux.make_private("/")
            linux.mount("overlay", str(merged), "overlay", 0, options)
            (merged / "written").write_text("by the container")
            return (merged / "who").read_text(), sorted(os.listdir(merged))

        who, names = call_in_child(mount_and_look)
        assert who == "top", (f"/who reads {who!r}: the layer built last must win, and "
                              "overlay lets the LEFTMOST lowerdir win")
        assert {"only-base", "only-middle", "only-top"} <= set(names), \
            "every layer must be visible in the merged view"
        assert (upper / "written").exists(), "writes must land in the upper dir"
        assert not any((Path(p) / "written").exists() for p in layers), \
            "a write reached a lower layer"


@exercise("04.whiteout-name",
          hint="keep the directory part and put '.wh.' in front of the last name: "
               "'etc/motd' -> 'etc/.wh.motd'")
def check_whiteout_name(fn: Callable[[str], str]) -> None:
    """Write whiteout_entry(path): the layer-tar entry that deletes ``path``."""
    import io
    import tarfile

    from contain import overlay

    cases = {"etc/motd": "etc/.wh.motd", "bin/ls": "bin/.wh.ls", "top": ".wh.top",
             "usr/share/doc/readme": "usr/share/doc/.wh.readme"}
    for path, expected in cases.items():
        got = fn(path)
        assert got == expected, f"for {path!r} you returned {got!r}, expected {expected!r}"
    # And for real: a layer holding your whiteout deletes the file when applied.
    with tempfile.TemporaryDirectory(prefix="contain-lab-ex04-") as tmp:
        root = Path(tmp)
        (root / "etc").mkdir()
        (root / "etc/motd").write_text("hello")
        (root / "etc/passwd").write_text("root")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.addfile(tarfile.TarInfo(fn("etc/motd")))
        buf.seek(0)
        overlay.apply(buf, root)
        assert not (root / "etc/motd").exists(), "applying the layer did not delete etc/motd"
        assert (root / "etc/passwd").exists(), "the whiteout deleted the wrong file"
