"""Parsing and validation in contain.namespaces (no root needed)."""

from __future__ import annotations

import pytest

from contain.namespaces import (
    IdMap,
    Namespace,
    TimeOffsets,
    flags,
    parse_id_maps,
    parse_kinds,
    translate,
)


def test_eight_kinds_with_distinct_flags() -> None:
    assert [k.value for k in Namespace] == ["mnt", "uts", "ipc", "pid", "net", "user",
                                            "cgroup", "time"]
    assert len({k.flag for k in Namespace}) == 8
    assert flags([Namespace.MNT, Namespace.PID]) == 0x00020000 | 0x20000000


def test_parse_kinds() -> None:
    assert parse_kinds("mnt, UTS,pid") == {Namespace.MNT, Namespace.UTS, Namespace.PID}
    with pytest.raises(ValueError, match="unknown namespace 'foo': use one of mnt"):
        parse_kinds("mnt,foo")
    with pytest.raises(ValueError, match="comma-separated"):
        parse_kinds(" , ")


def test_id_map_forms() -> None:
    assert IdMap.parse("0 100000 65536") == IdMap(0, 100000, 65536)
    assert IdMap.parse("0:100000:65536") == IdMap(0, 100000, 65536)
    assert str(IdMap(0, 100000, 65536)) == "0 100000 65536"
    assert parse_id_maps("0:100000:1000,1000:200000:10") == [IdMap(0, 100000, 1000),
                                                              IdMap(1000, 200000, 10)]


@pytest.mark.parametrize("bad", ["0 100000", "a b c", "0 -1 5", "0 1 2 3", ""])
def test_malformed_id_maps_name_the_form(bad: str) -> None:
    with pytest.raises(ValueError, match="0 100000 65536|empty id map"):
        parse_id_maps(bad)


def test_id_map_rules() -> None:
    with pytest.raises(ValueError, match="COUNT must be at least 1"):
        IdMap.parse("0 100000 0")
    with pytest.raises(ValueError, match="beyond the largest id"):
        IdMap.parse("0 4294967290 100")
    with pytest.raises(ValueError, match="overlap on the inside side"):
        parse_id_maps("0 100000 10,5 200000 10")
    with pytest.raises(ValueError, match="overlap on the outside side"):
        parse_id_maps("0 100000 10,100 100005 10")


def test_translate() -> None:
    maps = parse_id_maps("0 100000 1000,1000 200000 10")
    assert translate(0, maps) == 100000
    assert translate(999, maps) == 100999
    assert translate(1005, maps) == 200005
    assert translate(1010, maps) is None


def test_time_offsets() -> None:
    assert TimeOffsets.parse("boottime=86400") == TimeOffsets(0, 86400)
    assert TimeOffsets.parse("monotonic=-5,boottime=10") == TimeOffsets(-5, 10)
    for bad in ("boottime=x", "uptime=5", "5"):
        with pytest.raises(ValueError, match="monotonic=SECONDS,boottime=SECONDS"):
            TimeOffsets.parse(bad)
