"""The runner's lifecycle: groups run in order, each returns samples, the run's metadata is
stamped once and wins over what a group wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.errors import TwinlabError
from scripts.checks import runall
from scripts.checks.lifecycle import CheckGroup, RunContext, RunOptions, stamp
from scripts.checks.results.samples import Sample, VariantLabel
from scripts.checks.targets.subjects import Subject, Subjects

pytestmark = pytest.mark.unit

LABEL = VariantLabel("container", "container")


def _sample(metric: str, **metadata: str) -> Sample:
    return Sample(metric, 1, "", "docker://app", "container", ("A1",), metadata, kind="container")


def test_stamp_overrides_a_groups_run_metadata_and_keeps_its_own() -> None:
    stamped = stamp([_sample("m", run_id="stale", probe="p")], {"run_id": "r1", "virt_mode": "tcg"})
    assert dict(stamped[0].metadata) == {"run_id": "r1", "virt_mode": "tcg", "probe": "p"}


def test_runner_runs_chosen_groups_in_order_and_stamps_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[str] = []

    def group(name: str) -> CheckGroup:
        def run(context: RunContext) -> list[Sample]:
            seen.append(name)
            assert [t.url for t in context.targets] == ["docker://app"]
            return [_sample(f"{name}_metric", run_id="written-by-group")]

        return run

    monkeypatch.setattr(runall, "GROUPS", {n: group(n) for n in ("one", "two", "three")})
    subjects = Subjects((Subject("docker://app", label=LABEL),), virt_mode="tcg")
    outcome = runall.run_checks(subjects, RunOptions(groups=("three", "one"), results_dir=tmp_path))
    assert seen == ["three", "one"]
    run_ids = {sample.metadata["run_id"] for sample in outcome.samples}
    assert run_ids == {outcome.run_dir.name}
    assert {sample.metadata["virt_mode"] for sample in outcome.samples} == {"tcg"}
    # Where the time went: each chosen group, in run order, then the total, in the report.
    report = (outcome.run_dir / "report.md").read_text(encoding="utf-8")
    assert "Check groups' wall time: three 0 s, one 0 s, total 0 s." in report


def test_group_times_text_names_each_group_and_the_total() -> None:
    assert runall.group_times_text({"load": 61.6, "neighbours": 290.2}) == (
        "load 62 s, neighbours 290 s, total 352 s"
    )


def test_unknown_group_is_refused_before_anything_runs(tmp_path: Path) -> None:
    subjects = Subjects((Subject("docker://app", label=LABEL),), virt_mode="tcg")
    with pytest.raises(TwinlabError, match="unknown check groups \\['lod'\\]"):
        runall.run_checks(subjects, RunOptions(groups=("lod",), results_dir=tmp_path))
    assert not any(tmp_path.iterdir())


def test_the_project_root_is_where_pulumi_yaml_is() -> None:
    """Results and Pulumi commands run from the project root, however deep the module sits."""
    from scripts.checks.targets.deployed import ROOT

    assert (ROOT / "Pulumi.yaml").is_file()
    assert RunOptions().results_dir == ROOT / "results"
