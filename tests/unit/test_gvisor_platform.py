"""The gVisor platform probe's pure parts: daemon.json merging, the record, the choice."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components import gvisor_platform as gp
from components.errors import TwinlabError

pytestmark = pytest.mark.unit
RUNSC = "/usr/bin/runsc"
PTRACE_HOSTNET = gp.Configuration("ptrace", "host")


def test_runtime_names_encode_their_arguments() -> None:
    assert PTRACE_HOSTNET.runtime == "runsc-ptrace-hostnet"
    assert PTRACE_HOSTNET.runtime_args == ["--platform=ptrace", "--network=host"]
    assert gp.CANDIDATES[0].runtime == "runsc-systrap-netstack"
    assert len({c.runtime for c in gp.CANDIDATES}) == len(gp.CANDIDATES)


def test_candidates_put_gvisors_own_netstack_before_host_networking() -> None:
    networks = [c.network for c in gp.CANDIDATES]
    assert networks == sorted(networks, key=["sandbox", "host"].index)


def test_merge_keeps_foreign_settings_and_runtimes_and_replaces_only_ours() -> None:
    current: dict[str, Any] = {
        "log-level": "warn",
        "runtimes": {
            "kata": {"path": "/usr/bin/kata-runtime"},
            "runsc-systrap-netstack": {"path": "/old/runsc", "runtimeArgs": []},
        },
    }
    merged = gp.merged_daemon_config(current, [PTRACE_HOSTNET], RUNSC)
    assert merged == {
        "log-level": "warn",
        "runtimes": {
            "kata": {"path": "/usr/bin/kata-runtime"},
            "runsc-ptrace-hostnet": {
                "path": RUNSC,
                "runtimeArgs": ["--platform=ptrace", "--network=host"],
            },
        },
    }
    assert current["runtimes"]["runsc-systrap-netstack"]["path"] == "/old/runsc"  # not mutated


def test_unregistering_everything_of_ours_drops_an_empty_runtimes_key() -> None:
    current = {"runtimes": {"runsc-ptrace-hostnet": {"path": RUNSC}}, "debug": True}
    assert gp.merged_daemon_config(current, [], RUNSC) == {"debug": True}


def test_writing_daemon_json_is_idempotent_and_valid(tmp_path: Path) -> None:
    path = tmp_path / "docker" / "daemon.json"
    assert gp.write_daemon_config([PTRACE_HOSTNET], RUNSC, path) is True
    first = path.read_text(encoding="utf-8")
    assert gp.write_daemon_config([PTRACE_HOSTNET], RUNSC, path) is False
    assert path.read_text(encoding="utf-8") == first
    assert json.loads(first)["runtimes"]["runsc-ptrace-hostnet"]["path"] == RUNSC
    assert gp.write_daemon_config(gp.CANDIDATES, RUNSC, path) is True
    assert set(json.loads(path.read_text(encoding="utf-8"))["runtimes"]) == gp.MANAGED_RUNTIMES


def test_nothing_to_register_creates_no_daemon_json(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    assert gp.write_daemon_config([], RUNSC, path) is False
    assert not path.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "not a JSON object")],
)
def test_a_broken_daemon_json_is_refused_untouched(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TwinlabError, match=message):
        gp.write_daemon_config([PTRACE_HOSTNET], RUNSC, path)
    assert path.read_text(encoding="utf-8") == text


def test_runtimes_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(TwinlabError, match="'runtimes' is not a JSON object"):
        gp.merged_daemon_config({"runtimes": ["runc"]}, [PTRACE_HOSTNET], RUNSC)


def record(runtime: str | None, reason: str = "r") -> gp.GvisorPlatformRecord:
    chosen = next((c for c in gp.CANDIDATES if c.runtime == runtime), None)
    return gp.GvisorPlatformRecord(
        version="runsc version 0.0~20221219.0",
        runtime=runtime,
        platform=chosen.platform if chosen else None,
        network=chosen.network if chosen else None,
        reason=reason,
        image="twinlab/webapp:1.0.0-abc",
        probe_seconds=9.5,
        detected_at=1.0,
        attempts=(
            gp.Attempt("runc", True, "HTTP 200 after 0.9 s", 0.9),
            gp.Attempt("runsc-ptrace-netstack", False, "cannot run with network enabled", 0.0),
        ),
    )


def test_record_round_trips_through_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINLAB_CACHE", str(tmp_path))
    assert gp.load_record() is None
    saved = record("runsc-ptrace-hostnet")
    gp.save_record(saved)
    assert gp.load_record() == saved
    assert saved.configuration == PTRACE_HOSTNET
    (tmp_path / "gvisor-platform.json").write_text('{"version": 1}', encoding="utf-8")
    assert gp.load_record() is None  # a record of another shape is re-probed, not trusted


def test_unavailable_reason_names_why() -> None:
    assert gp.unavailable_reason(record("runsc-ptrace-hostnet")) is None
    assert "run scripts/setup.sh" in str(gp.unavailable_reason(None))
    reason = gp.unavailable_reason(record(None, "cannot tell: the app does not serve under runc"))
    assert reason is not None and "cannot tell" in reason


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        (
            "abc123\ndocker: Error response from daemon: failed to create shim task: OCI runtime "
            "create failed: unknown platform: systrap: unknown.\n"
            "See 'docker run --help'.\n",
            "failed to create shim task: OCI runtime create failed: unknown platform: systrap",
        ),
        ("only line\n", "only line"),
        ("", ""),
    ],
)
def test_the_failing_line_of_docker_output_is_kept(stderr: str, expected: str) -> None:
    assert gp.error_line(stderr).startswith(expected)


def fake_serve(working: set[str], calls: list[str]) -> Callable[[str], gp.Attempt]:
    def serve(runtime: str) -> gp.Attempt:
        calls.append(runtime)
        ok = runtime in working
        return gp.Attempt(runtime, ok, "HTTP 200 after 1.0 s" if ok else f"{runtime} broke", 1.0)

    return serve


def test_the_most_isolating_configuration_that_serves_is_chosen() -> None:
    calls: list[str] = []
    chosen, reason, attempts = gp.choose(fake_serve({"runc", PTRACE_HOSTNET.runtime}, calls))
    assert chosen == PTRACE_HOSTNET
    assert calls == ["runc", *(c.runtime for c in gp.CANDIDATES)]
    assert [a.ok for a in attempts] == [True, False, False, False, True]
    assert reason.startswith("runsc-ptrace-hostnet serves the app (failed first: runsc-systrap")


def test_the_search_stops_at_the_first_that_serves() -> None:
    calls: list[str] = []
    best = gp.CANDIDATES[0].runtime
    chosen, reason, _ = gp.choose(fake_serve({"runc", best, PTRACE_HOSTNET.runtime}, calls))
    assert chosen == gp.CANDIDATES[0] and calls == ["runc", best]
    assert reason == f"{best} serves the app"


def test_without_the_runc_control_the_probe_cannot_tell() -> None:
    calls: list[str] = []
    chosen, reason, attempts = gp.choose(fake_serve(set(gp.MANAGED_RUNTIMES), calls))
    assert chosen is None and calls == ["runc"] and len(attempts) == 1
    assert reason == "cannot tell: the app does not serve under runc either (runc broke)"


def test_when_nothing_serves_every_failure_is_named() -> None:
    chosen, reason, attempts = gp.choose(fake_serve({"runc"}, []))
    assert chosen is None and len(attempts) == 1 + len(gp.CANDIDATES)
    assert all(f"{c.runtime}: {c.runtime} broke" in reason for c in gp.CANDIDATES)


def test_the_variant_gets_the_recorded_runtime_or_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINLAB_CACHE", str(tmp_path))
    with pytest.raises(TwinlabError, match=r"run scripts/setup\.sh"):
        gp.recorded_runtime()
    gp.save_record(record(None, "every configuration failed (runsc-ptrace-hostnet: boom)"))
    with pytest.raises(TwinlabError, match="runsc-ptrace-hostnet: boom"):
        gp.recorded_runtime()
    gp.save_record(record("runsc-ptrace-hostnet"))
    assert gp.recorded_runtime() == "runsc-ptrace-hostnet"
