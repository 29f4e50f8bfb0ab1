"""The files of a `file://` Pulumi state backend, and the repair of what a killed pulumi tears.

Pulumi's file backend (the "diy" layout: .pulumi/stacks/<project>/<stack>.json, locks under
.pulumi/locks/<org>/<project>/<stack>/) writes each checkpoint through Go CDK's fileblob: the
new checkpoint goes to `<stack>.json.<random>.tmp`, a sidecar `<stack>.json.attrs` (content
type and md5, JSON) is written in place, then the temporary file is renamed over the checkpoint.
The checkpoint itself is thus never torn, but a SIGKILL between opening and filling the sidecar
leaves it empty, and fileblob then fails to read that stack, and `pulumi stack ls` for every
stack, with "error: EOF". A missing sidecar is read as "no attributes" (fileblob's own default),
so an unreadable one is removed; the checkpoint it described is untouched. Seen in CI: a kill
at "container created" left `ci-c45c3b.json.attrs` at 0 bytes, and each later test failed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlsplit

ATTRS_SUFFIX = ".attrs"
TEMP_SUFFIX = ".tmp"


def backend_dir(backend_url: str) -> Path | None:
    """The directory of a file:// backend; None for any other kind (nothing here to repair)."""
    parts = urlsplit(backend_url)
    return Path(parts.path) if parts.scheme == "file" else None


def lock_files(backend_url: str, stack: str) -> list[Path]:
    """The lock files of `stack` (.pulumi/locks/<org>/<project>/<stack>/<lock id>.json)."""
    root = backend_dir(backend_url)
    if root is None:
        return []
    locks = root / ".pulumi" / "locks"
    return sorted(path for path in locks.glob(f"**/{stack}/*.json") if path.parent.name == stack)


def _unreadable(sidecar: Path) -> bool:
    try:
        json.loads(sidecar.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return True
    return False


def torn_sidecars(backend_url: str) -> list[Path]:
    """Every empty or unreadable `.attrs` sidecar in the backend (checkpoints, their history,
    backups and locks are all written the same way)."""
    root = backend_dir(backend_url)
    if root is None:
        return []
    state = root / ".pulumi"
    return sorted(path for path in state.rglob(f"*{ATTRS_SUFFIX}") if _unreadable(path))


def remove_torn_sidecars(backend_url: str) -> list[Path]:
    """Remove every torn sidecar; returns them. Safe beside a live pulumi: a sidecar being
    written when removed only leaves its checkpoint without attributes, which reads fine."""
    torn = torn_sidecars(backend_url)
    for path in torn:
        path.unlink(missing_ok=True)
    return torn


def stale_temp_files(backend_url: str, stack: str) -> list[Path]:
    """The unfinished checkpoint writes of `stack` (`<stack>.json.<random>.tmp`). Only stale
    when no live pulumi holds the stack: the caller checks the lock first."""
    root = backend_dir(backend_url)
    if root is None:
        return []
    stacks = root / ".pulumi" / "stacks"
    prefix = f"{stack}.json."
    return sorted(
        path
        for path in stacks.glob(f"*/{prefix}*{TEMP_SUFFIX}")
        # only <random>.tmp after the prefix: stack names may hold dots ("dev" is not "dev.json.x")
        if path.name.removeprefix(prefix).count(".") == 1
    )


def forget_removed_stacks(backend_url: str, prefix: str, existing: set[str]) -> list[Path]:
    """Remove what `pulumi stack rm` keeps of removed stacks named `prefix*` (checkpoint
    backups, unfinished writes, history, backups, empty lock folders): for throwaway test
    stacks only, never for a user's. Stacks in `existing` are left alone."""
    root = backend_dir(backend_url)
    if root is None:
        return []
    state = root / ".pulumi"
    removed: list[Path] = []
    for path in sorted(state.glob(f"stacks/*/{prefix}*")):
        if path.name.split(".json", 1)[0] not in existing and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    folders = [*state.glob(f"history/*/{prefix}*"), *state.glob(f"backups/*/{prefix}*")]
    folders += state.glob(f"locks/*/*/{prefix}*")
    for folder in sorted(folders):
        if folder.name not in existing and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
