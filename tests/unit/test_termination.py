"""SIGTERM and SIGHUP unwind like Ctrl-C (scripts/termination.py). Each case runs a child Python
(the handlers must not replace pytest's own) that writes "started", then sleeps inside a `try`
whose `finally` writes "cleaned up"; the parent signals it once "started" is there."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.deploy import ROOT

pytestmark = pytest.mark.unit

CHILD = """
import sys, time
from pathlib import Path
from scripts.termination import run_main

marks = Path(sys.argv[1])

def main():
    try:
        marks.write_text("started\\n")
        time.sleep(30)
        return 0
    finally:
        with marks.open("a") as out:
            out.write("cleaned up\\n")
        time.sleep(float(sys.argv[2]))  # clean-up that takes a while

sys.exit({call})
"""


def run_child(
    tmp_path: Path,
    signals: list[signal.Signals],
    call: str = "run_main(main)",
    cleanup_s: float = 0.0,
    prefix: list[str] | None = None,
) -> tuple[int, list[str], str]:
    marks = tmp_path / "marks"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD.format(call=call)))
    child = subprocess.Popen(
        [*(prefix or []), sys.executable, str(script), str(marks), str(cleanup_s)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not (marks.exists() and marks.read_text().startswith("started")):
        assert time.monotonic() < deadline and child.poll() is None, "the child never started"
        time.sleep(0.02)
    for each in signals:
        child.send_signal(each)
        time.sleep(0.2)
    _, stderr = child.communicate(timeout=30)
    return child.returncode, marks.read_text().splitlines(), stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_termination_runs_the_clean_up_and_exits_with_the_shells_code(
    tmp_path: Path, signum: signal.Signals
) -> None:
    code, marks, stderr = run_child(tmp_path, [signum])
    assert marks == ["started", "cleaned up"]
    assert code == 128 + signum
    assert f"stopped by {signum.name}" in stderr


def test_without_the_handlers_python_dies_before_its_clean_up(tmp_path: Path) -> None:
    """The negative control: Python's default, what every command line had before."""
    code, marks, _ = run_child(tmp_path, [signal.SIGTERM], call="main()")
    assert marks == ["started"]
    assert code == -signal.SIGTERM


def test_a_second_signal_during_the_clean_up_kills_at_once(tmp_path: Path) -> None:
    code, marks, _ = run_child(tmp_path, [signal.SIGTERM, signal.SIGTERM], cleanup_s=10)
    assert marks == ["started", "cleaned up"]
    assert code == -signal.SIGTERM


def test_a_hangup_the_caller_ignores_stays_ignored(tmp_path: Path) -> None:
    """Under nohup a hangup must not stop the run: the handler is not installed over SIG_IGN."""
    code, marks, _ = run_child(
        tmp_path, [signal.SIGHUP, signal.SIGTERM], prefix=["nohup"], cleanup_s=0
    )
    assert marks == ["started", "cleaned up"]
    assert code == 128 + signal.SIGTERM
