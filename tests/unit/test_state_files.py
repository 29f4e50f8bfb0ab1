"""Which files of a file:// state backend a killed pulumi tore, on files laid out as Pulumi's
diy backend writes them (a checkpoint, its `.attrs` sidecar, `.bak`, `<random>.tmp`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.state_files import (
    forget_removed_stacks,
    remove_torn_sidecars,
    stale_temp_files,
    torn_sidecars,
)

pytestmark = pytest.mark.unit

SIDECAR = {"user.content_type": "text/plain; charset=utf-8", "md5": "Qv0E28wYNx6BPE/4DECukg=="}


def stack_files(root: Path, stack: str, sidecar: str = json.dumps(SIDECAR)) -> Path:
    folder = root / ".pulumi" / "stacks" / "twinlab"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stack}.json").write_text('{"version": 3}', encoding="utf-8")
    (folder / f"{stack}.json.attrs").write_text(sidecar, encoding="utf-8")
    return folder


def test_an_empty_or_cut_sidecar_is_torn_a_whole_one_is_not(tmp_path: Path) -> None:
    folder = stack_files(tmp_path, "whole")
    stack_files(tmp_path, "empty", sidecar="")
    stack_files(tmp_path, "cut", sidecar='{"user.content_type": "te')
    history = tmp_path / ".pulumi" / "history" / "twinlab" / "whole"
    history.mkdir(parents=True)
    (history / "whole-1.history.json.attrs").write_text("", encoding="utf-8")
    torn = [
        folder / "cut.json.attrs",
        folder / "empty.json.attrs",
        history / "whole-1.history.json.attrs",
    ]
    url = f"file://{tmp_path}"
    assert sorted(torn_sidecars(url)) == sorted(torn)
    assert sorted(remove_torn_sidecars(url)) == sorted(torn)
    assert torn_sidecars(url) == []
    assert (folder / "whole.json.attrs").exists()
    assert (folder / "empty.json").exists(), "the checkpoint itself is never touched"


def test_other_backends_have_nothing_to_repair() -> None:
    assert torn_sidecars("https://api.pulumi.com") == []
    assert stale_temp_files("s3://bucket", "dev") == []


def test_unfinished_writes_of_one_stack_only(tmp_path: Path) -> None:
    folder = stack_files(tmp_path, "dev")
    mine = folder / "dev.json.18ece4781692fdcc.tmp"
    mine.write_text("{", encoding="utf-8")
    (folder / "dev.json.x.json.1234.tmp").write_text("{", encoding="utf-8")  # stack "dev.json.x"
    (folder / "dev2.json.5678.tmp").write_text("{", encoding="utf-8")
    assert stale_temp_files(f"file://{tmp_path}", "dev") == [mine]


def test_forgetting_removed_test_stacks_keeps_live_ones_and_other_names(tmp_path: Path) -> None:
    folder = stack_files(tmp_path, "ci-aaaaaa")
    (folder / "ci-aaaaaa.json.bak").write_text("{}", encoding="utf-8")
    stack_files(tmp_path, "ci-bbbbbb")
    stack_files(tmp_path, "dev")
    history = tmp_path / ".pulumi" / "history" / "twinlab"
    for stack in ("ci-aaaaaa", "ci-bbbbbb", "dev"):
        (history / stack).mkdir(parents=True)
    removed = forget_removed_stacks(f"file://{tmp_path}", "ci-", existing={"ci-bbbbbb"})
    assert sorted(path.name for path in removed) == [
        "ci-aaaaaa",
        "ci-aaaaaa.json",
        "ci-aaaaaa.json.attrs",
        "ci-aaaaaa.json.bak",
    ]
    assert (folder / "ci-bbbbbb.json").exists() and (history / "ci-bbbbbb").exists()
    assert (folder / "dev.json").exists() and (history / "dev").exists()
