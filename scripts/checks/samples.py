"""One shape for every measurement, and an atomic JSON Lines store for them."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Variant = Literal["container", "vm", "host"]
Value = float | int | str | bool

CLAIM_IDS = ("A1", "A2", "R1", "R2", "R3", "R4", "P1", "I1", "I2", "I3", "U1")


@dataclass(frozen=True)
class Sample:
    """A single measured value.

    `target` is the target URL it was measured on (docker://NAME, ssh://user@host:port, local://),
    `variant` says which deployment kind that target is, `claims` the claim IDs of
    ../shared/claims.md the value speaks to. `metadata` carries the environment (virtualization
    mode, versions, host kernel) and anything needed to interpret the value.
    """

    metric: str
    value: Value
    unit: str
    target: str
    variant: Variant
    claims: tuple[str, ...]
    metadata: Mapping[str, Value] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        unknown = [c for c in self.claims if c not in CLAIM_IDS]
        if unknown:
            raise ValueError(f"sample {self.metric!r}: unknown claim IDs {unknown}")

    def to_json(self) -> str:
        record = asdict(self)
        record["claims"] = list(self.claims)
        record["metadata"] = dict(self.metadata)
        return json.dumps(record, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Sample:
        record = json.loads(line)
        record["claims"] = tuple(record["claims"])
        return cls(**record)


def write_samples(path: Path, samples: Iterable[Sample]) -> None:
    """Write all samples at once: a temp file in the same directory, fsync, then rename.

    A crash at any point leaves either the previous file or the complete new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for sample in samples:
                out.write(sample.to_json() + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        os.unlink(tmp_name)
        raise


def read_samples(path: Path) -> list[Sample]:
    with path.open(encoding="utf-8") as src:
        return [Sample.from_json(line) for line in src if line.strip()]
