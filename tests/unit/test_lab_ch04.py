"""Chapter 4's notebook helpers on plain directories (no root, no mounts needed)."""

from __future__ import annotations

import os
from pathlib import Path

from contain.lab.ch04 import digest, disk_usage, layer_rows


def test_layer_rows_lists_files_topmost_first(tmp_path: Path) -> None:
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/hostname").write_text("container\n")
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/motd").write_text("welcome\n")
    (lower / "empty").mkdir()
    os.symlink("etc/motd", lower / "link")
    rows = layer_rows([("upper", upper), ("lower", lower)])
    assert rows == [("upper", ["etc/hostname"]), ("lower", ["etc/motd", "link"])]


def test_digest_changes_with_content_and_names(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one")
    before = digest(tmp_path)
    assert digest(tmp_path) == before
    (tmp_path / "a").write_text("two")
    assert digest(tmp_path) != before
    (tmp_path / "a").write_text("one")
    assert digest(tmp_path) == before
    (tmp_path / "b").write_text("")
    assert digest(tmp_path) != before


def test_disk_usage_counts_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    empty = disk_usage(tmp_path / "d")
    (tmp_path / "d/big").write_bytes(os.urandom(65536))
    one = disk_usage(tmp_path / "d")
    assert one - empty >= 65536
    os.link(tmp_path / "d/big", tmp_path / "d/again")
    assert disk_usage(tmp_path / "d") == one
    assert disk_usage(tmp_path / "d", tmp_path / "d") == one  # the same root twice: once
