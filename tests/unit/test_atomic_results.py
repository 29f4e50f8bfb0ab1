"""Results are written all or nothing: a crash while writing leaves the previous samples.jsonl
and run directory exactly as they were, and no temporary file or directory behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.checks.results import report
from scripts.checks.results.report import write_run
from scripts.checks.results.samples import Sample, read_samples, write_samples

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
CRASHES = [RuntimeError("probe failed"), KeyboardInterrupt()]
CRASH_IDS = ["exception", "KeyboardInterrupt"]
METADATA = {"run_id": "r1", "virt_mode": "tcg"}


def sample(index: int) -> Sample:
    return Sample("requests_per_s", float(index), "1/s", "local://", "host", ("P1",), kind="host")


def samples_then(crash: BaseException, good: int = 50) -> Iterator[Sample]:
    """`good` samples, then the crash: as if a check failed midway through a run."""
    for index in range(good):
        yield sample(index)
    raise crash


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (names relative to it, hidden ones included) and its bytes."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("crash", CRASHES, ids=CRASH_IDS)
def test_samples_file_survives_a_crash_midway(tmp_path: Path, crash: BaseException) -> None:
    path = tmp_path / "samples.jsonl"
    write_samples(path, [sample(1), sample(2)])
    before = snapshot(tmp_path)

    with pytest.raises(type(crash)):
        write_samples(path, samples_then(crash))

    assert snapshot(tmp_path) == before  # same file, same bytes, no temp file next to it
    assert [s.value for s in read_samples(path)] == [1.0, 2.0]


@pytest.mark.parametrize("crash", CRASHES, ids=CRASH_IDS)
def test_run_directory_survives_a_crash_while_writing_samples(
    tmp_path: Path, crash: BaseException
) -> None:
    run_dir = tmp_path / "results" / "r1"
    write_run(run_dir, [sample(1), sample(2)], [], METADATA)
    before = snapshot(tmp_path)

    with pytest.raises(type(crash)):
        write_run(run_dir, samples_then(crash), [], METADATA)  # type: ignore[arg-type]

    assert snapshot(tmp_path) == before
    assert sorted(os.listdir(run_dir.parent)) == ["r1"]  # no staging directory left


@pytest.mark.parametrize("crash", CRASHES, ids=CRASH_IDS)
def test_run_directory_survives_a_crash_while_writing_the_report(
    tmp_path: Path, crash: BaseException, monkeypatch: pytest.MonkeyPatch
) -> None:
    # samples.jsonl and the plots are already staged when the HTML report fails.
    run_dir = tmp_path / "results" / "r1"
    write_run(run_dir, [sample(1)], [], METADATA)
    before = snapshot(tmp_path)

    def broken_render(*_args: object) -> str:
        raise crash

    monkeypatch.setattr(report, "render_html", broken_render)
    with pytest.raises(type(crash)):
        write_run(run_dir, [sample(7), sample(8)], [], METADATA)

    assert snapshot(tmp_path) == before
    assert sorted(os.listdir(run_dir.parent)) == ["r1"]


@pytest.mark.parametrize("crash", CRASHES, ids=CRASH_IDS)
def test_a_first_run_that_crashes_leaves_nothing(tmp_path: Path, crash: BaseException) -> None:
    results = tmp_path / "results"
    with pytest.raises(type(crash)):
        write_run(results / "r1", samples_then(crash), [], METADATA)  # type: ignore[arg-type]
    assert os.listdir(results) == []


def test_a_complete_write_replaces_the_previous_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "r1"
    write_run(run_dir, [sample(1)], [], METADATA)
    write_run(run_dir, [sample(5), sample(6)], [], METADATA)
    assert [s.value for s in read_samples(run_dir / "samples.jsonl")] == [5.0, 6.0]
    assert {"samples.jsonl", "report.md", "report.html"} <= set(os.listdir(run_dir))
    assert sorted(os.listdir(tmp_path)) == ["r1"]


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from scripts.checks.results.samples import Sample, write_samples

    def samples():
        for index in range(1000):
            if index == 500:
                print("midway", flush=True)
                time.sleep(60)  # killed here
            yield Sample("m", index, "", "local://", "host", (), kind="host")

    write_samples(Path(sys.argv[1]), samples())
    """
)


def test_a_killed_writer_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    """SIGKILL runs no cleanup: the temp file may stay (hidden, dot-named), but the results
    file is still the previous complete one."""
    path = tmp_path / "samples.jsonl"
    write_samples(path, [sample(1), sample(2)])
    before = path.read_bytes()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "midway"
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
        if writer.stdout is not None:
            writer.stdout.close()

    assert path.read_bytes() == before
    others = [name for name in os.listdir(tmp_path) if name != "samples.jsonl"]
    assert all(name.startswith(".samples.jsonl.") for name in others), others
