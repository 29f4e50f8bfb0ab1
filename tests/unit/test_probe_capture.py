"""The fixture capture command (scripts/checks/probes/capture.py): what it captures for a stack,
how it keeps this machine's command lines out, and its command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scripts.checks.probes import capture
from scripts.checks.results.samples import VariantLabel
from scripts.checks.targets.deployed import DeployedVariant

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parent / "data" / "probes"


def variant(name: str, kind: str, target: str) -> DeployedVariant:
    return DeployedVariant(name, kind, "http://127.0.0.1:1", target, f"twinlab-s-{name}", "id", 1.0)


def test_a_stack_capture_writes_every_deployed_variant_and_the_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    deployed = [
        variant("container", "container", "docker://twinlab-s-app"),
        variant("gvisor", "sandbox", "docker://twinlab-s-gvisor"),
        variant("vm", "vm", "ssh://twin@127.0.0.1:2222?key=/k"),
    ]
    stack: Any = type("Stack", (), {"variants": deployed})()
    calls: list[tuple[str, str, bool, str]] = []

    def fake_capture(
        label: str, url: str, redacted: bool, out_root: Path, variant: VariantLabel
    ) -> Path:
        calls.append((label, url, redacted, variant.kind))
        return out_root / label

    monkeypatch.setattr(capture, "read_deployed", lambda name: stack)
    monkeypatch.setattr(capture, "capture", fake_capture)
    written = capture.capture_stack("s", tmp_path)
    assert calls == [
        ("container", "docker://twinlab-s-app", False, "container"),
        ("gvisor", "docker://twinlab-s-gvisor", False, "sandbox"),  # its kind, not the scheme's
        ("vm", "ssh://twin@127.0.0.1:2222?key=/k", False, "vm"),
        ("host", "local://", True, "host"),  # the host's own command lines are this machine's
    ]
    assert written == [tmp_path / name for name in ("container", "gvisor", "vm", "host")]


def test_redaction_keeps_the_marker_and_replaces_other_command_lines_by_the_process_name() -> None:
    text = (DATA / "container" / "processes.txt").read_text(encoding="utf-8")
    redacted = capture.redact(text, "sh -c")
    assert "gunicorn --config" in text and "gunicorn --config" not in redacted
    assert "==> /proc/1/cmdline <==\npython3\n" in redacted
    assert "sh -c printf" in redacted  # the marker's own command line stays


def test_mounts_under_mnt_are_left_out() -> None:
    line = "36 25 0:32 / /mnt/scratch rw,relatime - tmpfs tmpfs rw\n"
    kept = "37 25 0:33 / /proc rw - proc proc rw\n"
    assert capture.without_local_mounts(line + kept) == kept


@pytest.mark.parametrize(
    "argv",
    [[], ["--stack", "s", "--controls"], ["label-only"], ["--stack", "s", "lab", "docker://x"]],
)
def test_the_command_line_takes_exactly_one_mode(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        capture.main(argv)
    assert stopped.value.code == 2
    assert "give one of --stack STACK, --controls, or LABEL TARGET_URL" in capsys.readouterr().err
