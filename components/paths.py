"""Where twinlab keeps things on this machine: one definition for the stack program, the
checks and the tests.

    cache_dir()  ~/.cache/twinlab (TWINLAB_CACHE): toolchain, images, the virt-mode record
    state_dir()  ~/.local/state/twinlab (TWINLAB_STATE): Pulumi state, keys, sshd, logs
    POOL_ROOT    /var/lib/twinlab/pools: the default `poolDir`, where each stack's libvirt
                 pool has its directory (named like the stack's resources)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

POOL_ROOT = Path("/var/lib/twinlab/pools")


def cache_dir() -> Path:
    return Path(os.environ.get("TWINLAB_CACHE", Path.home() / ".cache" / "twinlab"))


def write_json_record(path: Path, record: Any) -> None:
    """A probe's record as JSON, replaced atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def state_dir() -> Path:
    default = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "twinlab"
    return Path(os.environ.get("TWINLAB_STATE", default))
