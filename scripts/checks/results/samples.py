"""One shape for every measurement, and an atomic JSON Lines store for them."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

Value = float | int | str | bool

CLAIM_IDS = ("A1", "A2", "R1", "R2", "R3", "R4", "P1", "I1", "I2", "I3", "U1", "G1", "S1", "N1")
HOST = "host"  # variant name and kind of the host baseline (local://)


@dataclass(frozen=True)
class VariantLabel:
    """Which deployment variant a target is: its registered name and its kind, from the stack
    outputs. `guessed` marks a target named by hand whose kind was taken from its URL scheme."""

    name: str
    kind: str
    guessed: bool = False

    def metadata(self) -> dict[str, Value]:
        """What a sample records about how its variant was known."""
        return {"variant_guessed_from": "URL scheme"} if self.guessed else {}


HOST_LABEL = VariantLabel(HOST, HOST)


# The kinds the textbook claims compare (P1, N1 among them): each one's primary variant.
TEXTBOOK_KINDS = ("container", "vm")


def primary_variant(labels: Iterable[VariantLabel], kind: str) -> str | None:
    """The variant a textbook claim about `kind` is judged on: the one named like the kind
    (the registry's plain "container" and "vm"), else the first of that kind."""
    names = [label.name for label in labels if label.kind == kind]
    if kind in names:
        return kind
    return names[0] if names else None


def textbook_pair(labels: Iterable[VariantLabel]) -> set[str]:
    """The names of the primary variants of TEXTBOOK_KINDS among `labels`."""
    chosen = list(labels)
    return {name for kind in TEXTBOOK_KINDS if (name := primary_variant(chosen, kind))}


@dataclass(frozen=True)
class Sample:
    """A single measured value.

    `target` is the target URL it was measured on (docker://NAME, ssh://user@host:port, local://),
    `variant` the name of the deployment variant that target is ("container", "vm", ...; "host"
    for the host baseline) and `kind` its kind ("container", "sandbox", "vm", "host"): verdicts
    compare kinds. `claims` are the claim IDs of scripts/checks/claims/ the value speaks to.
    `metadata` carries the environment (virtualization mode, versions, host kernel) and anything
    needed to interpret the value.
    """

    metric: str
    value: Value
    unit: str
    target: str
    variant: str
    claims: tuple[str, ...]
    metadata: Mapping[str, Value] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)
    kind: str = field(kw_only=True)

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
        record.setdefault("kind", record["variant"])  # written before variants had kinds
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
