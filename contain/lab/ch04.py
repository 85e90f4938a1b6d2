"""Chapter 4's notebook helpers: read a layer stack, draw it, and measure what layers save.

Nothing here mounts anything: these functions only look at layers as plain directories
on the host (the overlay itself is mounted in a child, in the notebook's cells).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from contain import overlay

Rows = list[tuple[str, list[str]]]


def layer_rows(layers: Sequence[tuple[str, Path]]) -> Rows:
    """What each layer holds, topmost first: ``[(title, entries), ...]``.

    Files are listed by their path in the layer; a whiteout (a character device 0/0)
    reads ``✗ NAME (whiteout)`` and a directory overlay marked opaque ``NAME/ (opaque)``.
    Other directories are left out: they only hold the files below them.
    """
    rows: Rows = []
    for title, root in layers:
        entries = []
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = Path(dirpath, name)
                rel = str(path.relative_to(root))
                st = os.lstat(path)
                if overlay.is_whiteout(st):
                    entries.append(f"✗ {rel} (whiteout)")
                elif path.is_dir() and not path.is_symlink():
                    if overlay.is_opaque(str(path)):
                        entries.append(f"{rel}/ (opaque)")
                else:
                    entries.append(rel)
        rows.append((title, sorted(entries)))
    return rows


def draw_stack(rows: Rows, merged: Sequence[str], title: str) -> None:
    """Draw ``rows`` (from :func:`layer_rows`) as stacked boxes under the merged view."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(9, 1.2 + 1.1 * len(rows)))
    colours = ["#f9d77e", "#9ecae1", "#c6dbef", "#deebf7"]
    y = 1.05 * len(rows)
    ax.add_patch(FancyBboxPatch((0, y + 0.15), 10, 0.75, boxstyle="round,pad=0.02",
                                fc="#a1d99b", ec="black"))
    ax.text(0.2, y + 0.52, "merged (the container's /):  " + ", ".join(merged), va="center",
            fontsize=9)
    for i, (name, entries) in enumerate(rows):
        y -= 1.05
        ax.add_patch(FancyBboxPatch((0, y), 10, 0.85, boxstyle="round,pad=0.02",
                                    fc=colours[i % len(colours)], ec="black"))
        ax.text(0.2, y + 0.6, name, fontweight="bold", fontsize=10)
        ax.text(0.2, y + 0.22, ", ".join(entries), fontsize=9)
    top = 1.05 * len(rows)
    ax.annotate("", xy=(10.4, 0.2), xytext=(10.4, top - 0.1), arrowprops={"arrowstyle": "->"})
    ax.text(10.5, top / 2, "lookup\norder", fontsize=9)
    ax.set_xlim(-0.2, 11.5)
    ax.set_ylim(-0.1, top + 1.0)
    ax.axis("off")
    ax.set_title(title)
    plt.show()


def digest(root: Path) -> str:
    """A SHA-256 over every path, mode, owner, size and file content under ``root``:
    equal digests before and after mean nobody changed the tree."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        h.update(f"{path.relative_to(root)}|{st.st_mode}|{st.st_uid}|{st.st_size}".encode())
        if path.is_file() and not path.is_symlink():
            h.update(path.read_bytes())
    return h.hexdigest()


def disk_usage(*roots: Path) -> int:
    """Bytes allocated under ``roots``, like ``du``: ``st_blocks`` (512-byte units, so a
    sparse or tiny file counts what it really takes), each inode once (hard links)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total
