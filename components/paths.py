"""Where twinlab keeps things on this machine: one definition for the stack program, the
checks and the tests.

    cache_dir()  ~/.cache/twinlab (TWINLAB_CACHE): toolchain, images, the virt-mode record
    state_dir()  ~/.local/state/twinlab (TWINLAB_STATE): Pulumi state, keys, sshd, logs
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("TWINLAB_CACHE", Path.home() / ".cache" / "twinlab"))


def state_dir() -> Path:
    default = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "twinlab"
    return Path(os.environ.get("TWINLAB_STATE", default))
