"""Container ids name directories and cgroups: only plain names get through."""

import pytest

from contain.runtime.state import StateError, check_id, container_dir


@pytest.mark.parametrize("bad", [".", "..", "", "a/b", "../x", "-rf", ".hidden", "x" * 65,
                                 "a b", "é"])
def test_bad_ids_are_refused(bad: str) -> None:
    with pytest.raises(StateError, match="invalid container id"):
        check_id(bad)
    with pytest.raises(StateError):
        container_dir(bad)


@pytest.mark.parametrize("good", ["web", "a1b2c3d4e5f6", "my.app-1_2", "x" * 64])
def test_plain_names_pass(good: str) -> None:
    assert check_id(good) == good
