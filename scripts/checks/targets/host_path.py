"""Paths of a remote host's file system, as pathlib paths: the cgroup and /proc code (the R4
budget, its watcher) is written against pathlib, and runs unchanged on a HostPath.

Each operation is one command on the host over its SSH (HostHandle.run); a directory listing
brings each entry's type along, so walking a tree costs one command per directory, not per
entry. Errors are OSErrors with the host's message, as the local calls raise them (a missing
file is FileNotFoundError). A path made from a HostPath (`/`, parent) stays on the same host.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Iterator
from pathlib import Path, PosixPath
from typing import ClassVar

from scripts.checks.targets.host import HostHandle

# One line per entry: its type (d directory, f file, l symlink, ...) and name.
LIST_DIR = 'find "$0" -mindepth 1 -maxdepth 1 -printf "%y %f\\n"'


class HostPath(PosixPath):
    """A path on `host` (a class attribute: see `host_path`)."""

    host: ClassVar[HostHandle]
    _kind: str | None = None  # the type a directory listing saw ("d", "f", "l"), if any

    def _run(self, *argv: str) -> tuple[int, str]:
        done = self.host.run(list(argv))
        return done.returncode, done.stdout if done.returncode == 0 else done.stderr.strip()

    def _raise(self, message: str) -> None:
        code = errno.ENOENT if "No such file" in message else errno.EIO
        raise OSError(code, f"{message} (on {self.host})", str(self))

    def exists(self, *, follow_symlinks: bool = True) -> bool:
        if self._kind is not None:
            return True
        return self._run("test", "-e", str(self))[0] == 0

    def is_dir(self) -> bool:
        if self._kind is not None:
            return self._kind == "d"
        return self._run("test", "-d", str(self))[0] == 0

    def is_symlink(self) -> bool:
        if self._kind is not None:
            return self._kind == "l"
        return self._run("test", "-L", str(self))[0] == 0

    def iterdir(self) -> Iterator[HostPath]:  # type: ignore[override]
        rc, text = self._run("sh", "-c", LIST_DIR, str(self))
        if rc != 0:
            self._raise(text)
        for line in text.splitlines():
            kind, _, name = line.partition(" ")
            child = self / name
            child._kind = kind
            yield child

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        rc, text = self._run("cat", "--", str(self))
        if rc != 0:
            self._raise(text)
        return text

    def write_text(
        self,
        data: str,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> int:
        rc, text = self._run("sh", "-c", 'printf %s "$1" > "$0"', str(self), data)
        if rc != 0:
            self._raise(text)
        return len(data)

    def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        rc, text = self._run("mkdir", *(["-p"] if parents else []), "--", str(self))
        if rc != 0 and not (exist_ok and "File exists" in text):
            self._raise(text)

    def unlink(self, missing_ok: bool = False) -> None:
        rc, text = self._run("rm", "-f" if missing_ok else "--", str(self))
        if rc != 0:
            self._raise(text)

    def rmdir(self) -> None:
        rc, text = self._run("rmdir", "--", str(self))
        if rc != 0:
            self._raise(text)


@functools.cache
def _path_class(host: HostHandle) -> type[HostPath]:
    return type("HostPath", (HostPath,), {"host": host})


def host_path(host: HostHandle | None, path: str | Path) -> Path:
    """`path` on `host`: a plain Path when the host is this machine (None or local)."""
    if host is None or host.is_local:
        return Path(path)
    return _path_class(host)(path)
