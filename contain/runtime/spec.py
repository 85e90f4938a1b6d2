"""What to run and how: the one description shared by the CLI and the Python API."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from contain.namespaces import (
    DEFAULT,
    DEFAULT_ID_MAP,
    IdMap,
    Namespace,
    TimeOffsets,
    parse_id_maps,
    parse_kinds,
)

if TYPE_CHECKING:
    from contain.cgroups.limits import Limits

DATA_ROOT = "/var/lib/contain"  # images, layers, base root filesystems
STATE_ROOT = "/run/contain"  # one directory per live container


def data_root() -> Path:
    return Path(os.environ.get("CONTAIN_ROOT", DATA_ROOT))


def state_root() -> Path:
    return Path(os.environ.get("CONTAIN_STATE", STATE_ROOT))


def new_id() -> str:
    """A random 12-hex-digit container id (short enough for interface names)."""
    return os.urandom(6).hex()  # not `secrets`: its import (hmac, hashlib) costs ~4 ms


def check_hostname(name: str) -> str:
    """sethostname(2) takes at most 64 bytes (HOST_NAME_MAX); keep to what DNS allows."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?", name):
        raise ValueError(f"--hostname {name!r}: use 1-64 letters, digits, '-' and '.', "
                         "starting and ending with a letter or digit")
    return name


@dataclass
class RunSpec:
    argv: list[str]
    rootfs: Path | None = None  # None: the default busybox root filesystem
    hostname: str | None = None
    namespaces: frozenset[Namespace] = DEFAULT
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"
    init: bool = False  # an init as PID 1 that reaps and forwards (docker run --init)
    id: str = field(default_factory=new_id)
    pid_file: Path | None = None
    rm: bool = False  # remove the writable layer when the container exits (--rm)
    # Chapter 2: the user namespace's maps (used when Namespace.USER is in namespaces) and
    # the time namespace's clock offsets (used when Namespace.TIME is).
    uid_maps: list[IdMap] = field(default_factory=lambda: [DEFAULT_ID_MAP])
    gid_maps: list[IdMap] = field(default_factory=lambda: [DEFAULT_ID_MAP])
    time_offsets: TimeOffsets = field(default_factory=TimeOffsets)
    # Chapter 3: resource limits for the container's cgroup contain/<id> (None: no limits,
    # the cgroup is still made, for stats and clean killing); final stats as JSON here.
    limits: Limits | None = None
    stats_file: Path | None = None

    def isolate(self, kinds: str | None = None, *, userns: bool = False,
                uidmap: Sequence[str] = (), gidmap: Sequence[str] = (),
                time_offset: str | None = None) -> None:
        """Chapter 2, from what users type: which namespaces (``"mnt,uts,pid"``), the
        user namespace's maps (``"0:100000:65536"``), the time namespace's offsets."""
        chosen = set(parse_kinds(kinds) if kinds else self.namespaces)
        if userns or uidmap or gidmap:
            chosen.add(Namespace.USER)
        if uidmap:
            self.uid_maps = parse_id_maps(",".join(uidmap))
        if gidmap:
            self.gid_maps = parse_id_maps(",".join(gidmap))
        elif uidmap:
            self.gid_maps = list(self.uid_maps)
        if time_offset:
            self.time_offsets = TimeOffsets.parse(time_offset)
            chosen.add(Namespace.TIME)
        self.namespaces = frozenset(chosen)

    def limit(self, **options: str | Sequence[str] | None) -> None:
        """Chapter 3, from what users type: ``limit(memory="256m", cpus="0.5")`` (the
        keywords of :func:`contain.cgroups.limits.parse_limits`)."""
        from contain.cgroups.limits import parse_limits

        self.limits = parse_limits(**options)  # type: ignore[arg-type]
