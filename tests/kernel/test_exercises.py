"""Every registered exercise of every chapter: the reference passes, the stub does not.

Parametrised over the registry, so a chapter's new exercise is tested here the moment it
is registered. Checks run real work (children, mounts), hence tests/kernel.
"""

from __future__ import annotations

import os

import pytest

from contain.lab.exercises import reference_solution, registry, stub, verdict

NAMES = sorted(registry())


@pytest.mark.parametrize("name", NAMES)
def test_reference_solution_passes(name: str) -> None:
    status, line = verdict(name, reference_solution(name))
    assert status == "passed", line


@pytest.mark.parametrize("name", NAMES)
def test_untouched_stub_is_not_attempted(name: str) -> None:
    status, line = verdict(name, stub)
    assert status == "not-attempted", line


# --- plausible wrong answers for chapters 0 and 1 -------------------------------------
def chroot_only(root: str) -> None:
    from contain import rootfs

    rootfs.chroot(root)


def pivot_without_detaching(root: str) -> None:
    from contain import linux

    linux.make_private("/")
    linux.bind(root, root)
    os.chdir(root)
    linux.pivot_root(".", ".")
    os.chdir("/")


def pivot_without_private(root: str) -> None:
    from contain import linux

    linux.bind(root, root)
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount(".", linux.MNT_DETACH)


def pivot_without_bind(root: str) -> None:
    from contain import linux

    linux.make_private("/")
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount(".", linux.MNT_DETACH)


WRONG = [
    ("01.pivot", chroot_only, "not a mount point"),
    ("01.pivot", pivot_without_detaching, "old root is still attached"),
    ("01.pivot", pivot_without_private, "EINVAL"),
    ("01.pivot", pivot_without_bind, "EBUSY"),
    ("01.mountinfo", lambda text: [line.split()[4] for line in text.splitlines()], "sample"),
    ("01.static", lambda path: True, "needs ld-linux"),
    ("01.static", lambda path: open(path, "rb").read(4) == b"\x7fELF", "needs ld-linux"),
    ("00.cgroup-version", lambda text: "v2" if "cgroup2" in text else "v1", "returned"),
]


@pytest.mark.parametrize(("name", "answer", "why"), WRONG,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(WRONG)])
def test_wrong_answers_fail_with_a_reason(name: str, answer: object, why: str,
                                          no_new_mounts: None) -> None:
    status, line = verdict(name, answer)  # type: ignore[arg-type]
    assert status == "failed", line
    assert why in line, line


def test_pivot_check_leaves_nothing_behind() -> None:
    verdict("01.pivot", pivot_without_detaching)
    assert not os.path.exists("/tmp/contain-lab-check-pivot")
    with open("/proc/self/mountinfo") as f:
        assert "contain-lab-check-pivot" not in f.read()
