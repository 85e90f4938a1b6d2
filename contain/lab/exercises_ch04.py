"""Chapter 4's exercises: overlay's option string, and the layer entries of deletions."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from contain.lab.exercises import exercise


@exercise("04.lowerdir",
          hint="which lowerdir does overlay look in first, and which layer should win? "
               "Compare with the order the layers were built in. The other two options "
               "follow lowerdir in the same string (section 1 printed one).")
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
          hint="a layer tar stores a deletion as a file NEXT TO the deleted name, in the "
               "same directory; a replaced directory gets a marker file INSIDE it. Section 4 "
               "listed both kinds. Tar entry names are relative: no leading '/'.")
def check_whiteout_name(fn: Callable[[str], str]) -> None:
    """Write layer_entry(change): the layer-tar entry that records a deletion."""
    import io
    import tarfile

    from contain import overlay

    cases = {
        "deleted etc/motd": "etc/.wh.motd",
        "deleted /bin/ls": "bin/.wh.ls",
        "deleted top": ".wh.top",
        "deleted usr/share/doc/readme": "usr/share/doc/.wh.readme",
        "replaced directory data": "data/.wh..wh..opq",
        "replaced directory /var/cache/apt": "var/cache/apt/.wh..wh..opq",
    }
    for change, expected in cases.items():
        got = fn(change)
        assert got == expected, f"for {change!r} you returned {got!r}, expected {expected!r}"
    # And for real: a layer holding your entries changes a directory as the container did.
    with tempfile.TemporaryDirectory(prefix="contain-lab-ex04-") as tmp:
        root = Path(tmp)
        for name in ("etc/motd", "etc/passwd", "data/old.txt", "data/sub/deep.txt"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("from the base\n")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.addfile(tarfile.TarInfo(fn("deleted etc/motd")))
            data = tarfile.TarInfo("data")
            data.type = tarfile.DIRTYPE
            tar.addfile(data)
            tar.addfile(tarfile.TarInfo(fn("replaced directory data")))
            new = tarfile.TarInfo("data/new.txt")
            new.size = 6
            tar.addfile(new, io.BytesIO(b"fresh\n"))
        buf.seek(0)
        overlay.apply(buf, root)
        assert not (root / "etc/motd").exists(), "applying the layer did not delete etc/motd"
        assert (root / "etc/passwd").exists(), "the whiteout deleted the wrong file"
        left = sorted(str(p.relative_to(root / "data")) for p in (root / "data").rglob("*"))
        assert left == ["new.txt"], (f"after the layer, data/ holds {left}: the replaced "
                                     "directory must show only what the layer put in it")
