"""R1's start-up stages: the passive marks, the console tail, the poller that waits for the
app's listening mark, and the stacked bar (a local HTTP server on 127.0.0.1; no daemons)."""

from __future__ import annotations

import http.server
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.checks.parsers.domain_xml import DomainXmlError, clone_domain_xml
from scripts.checks.parsers.start_marks import (
    docker_time,
    guest_stage,
    listening_wall_clock,
    split_log_frames,
)
from scripts.checks.resources import footprint
from scripts.checks.resources.clones import Clone, Cloner
from scripts.checks.resources.errors import ReadinessTimeoutError
from scripts.checks.resources.start_time import measure_start_times, ordered_stages
from scripts.checks.resources.start_watch import ConsoleWatch, NoMarks
from scripts.checks.results.run_tags import run_tags
from scripts.checks.results.start_stages import (
    PLOT_FILE,
    plot_start_stages,
    stage_lines,
    stage_summaries,
)
from workloads.app.gunicorn_conf import listening_mark

pytestmark = pytest.mark.unit


def test_the_listening_mark_reads_back_from_docker_logs_and_the_console() -> None:
    line = listening_mark(1764513324.123456)
    assert listening_wall_clock(line) == pytest.approx(1764513324.123456)
    # a console line may carry a prefix (e.g. a kernel timestamp)
    console = f"[   5.123456] python3[212]: {line}"
    assert listening_wall_clock(console) == pytest.approx(1764513324.123456)
    assert listening_wall_clock("[INFO] Listening at: http://0.0.0.0:8080 (1)") is None


def test_guest_stage_lines() -> None:
    stage = guest_stage("twinlab-stage: initramfs uptime 1.27 s\r")
    assert stage is not None and (stage.name, stage.uptime_s) == ("initramfs", 1.27)
    assert guest_stage("twinlab-initramfs: /dev/vda present") is None


def test_docker_log_frames_split_at_their_headers() -> None:
    def frame(stream: int, payload: bytes) -> bytes:
        return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload

    data = frame(1, b"out\n") + frame(2, b"err line\n") + frame(2, b"partial")[:10]
    payloads, rest = split_log_frames(data)
    assert payloads == [b"out\n", b"err line\n"]
    assert rest == frame(2, b"partial")[:10]


def test_docker_time_keeps_sub_microsecond_digits_and_rejects_the_zero_time() -> None:
    assert docker_time("2026-11-30T14:35:24.949528887Z") == pytest.approx(
        1796049324.949528887, abs=1e-6
    )
    with pytest.raises(ValueError, match="never started"):
        docker_time("0001-01-01T00:00:00Z")
    with pytest.raises(ValueError, match="RFC 3339"):
        docker_time("yesterday")


DOMAIN = """<domain type='qemu'><name>twinlab-dev-vm</name><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/a.qcow2'/>
<target dev='vda' bus='virtio'/></disk>
<serial type='pty'><target type='isa-serial' port='0'/></serial>
<console type='pty'><target type='serial' port='0'/></console></devices></domain>"""


def test_a_clone_logs_its_serial_console_to_the_file_given() -> None:
    xml = clone_domain_xml(DOMAIN, "c1", {"vda": "/c1.qcow2"}, {}, "/var/log/x/c1-console.log")
    log = ET.fromstring(xml).find("devices/serial/log")
    assert log is not None and log.attrib == {"file": "/var/log/x/c1-console.log", "append": "off"}
    without_serial = DOMAIN.replace("<serial type='pty'>", "<x>").replace("</serial>", "</x>")
    with pytest.raises(DomainXmlError, match="serial"):
        clone_domain_xml(without_serial, "c1", {"vda": "/c1.qcow2"}, {}, "/l")


def test_stages_come_in_the_kinds_order_with_first_200_last() -> None:
    seen = {"app_listening": 5.0, "init": 2.0, "qemu_running": 0.1, "kernel_entry": 0.4}
    assert list(ordered_stages("vm", seen, 6.0)) == [
        "qemu_running",
        "kernel_entry",
        "init",
        "app_listening",
        "first_200",
    ]
    assert ordered_stages("container", {"start_call": 0.05}, 0.6) == {
        "start_call": 0.05,
        "first_200": 0.6,
    }


def _write_lines(path: Path, lines: list[tuple[float, str]]) -> threading.Thread:
    """Append each line to `path` after its delay (seconds from now), like virtlogd would."""

    def write() -> None:
        started = time.monotonic()
        for delay, line in lines:
            time.sleep(max(0.0, started + delay - time.monotonic()))
            with path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\r\n")

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_console_watch_stamps_lines_as_they_arrive(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    created = time.monotonic()
    watch = ConsoleWatch(log, created)
    watch.qemu_running_s = 0.05
    writer = _write_lines(
        log,
        [
            (0.2, "twinlab-stage: initramfs uptime 0.15 s"),
            (0.4, "twinlab-stage: init uptime 0.35 s"),
            (0.7, f"[    0.6] python3[99]: {listening_mark(time.time())}"),
        ],
    )
    try:
        heard = watch.wait_listening(created + 5.0)
        writer.join()
        stages = watch.stages()
    finally:
        watch.close()
    assert heard is not None and 0.65 <= heard - created < 1.0
    assert stages["qemu_running"] == 0.05
    assert 0.2 <= stages["initramfs"] < 0.35
    assert stages["kernel_entry"] == pytest.approx(stages["initramfs"] - 0.15)
    assert 0.4 <= stages["init"] < 0.55
    assert stages["app_listening"] == pytest.approx(heard - created)


def test_console_watch_gives_up_at_its_deadline(tmp_path: Path) -> None:
    watch = ConsoleWatch(tmp_path / "never-written.log", time.monotonic())
    try:
        started = time.monotonic()
        assert watch.wait_listening(started + 0.2) is None
        assert time.monotonic() - started < 1.0
    finally:
        watch.close()


class _App(http.server.BaseHTTPRequestHandler):
    """Answers 200 once listening; records when each request arrived."""

    listening_at = float("inf")
    requests: list[int] = []  # noqa: RUF012 - the status of each request; reset per test

    def do_GET(self) -> None:
        status = 200 if time.monotonic() >= self.listening_at else 503
        self.requests.append(status)
        self.send_response(status)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def app() -> Iterator[http.server.HTTPServer]:
    _App.listening_at, _App.requests = float("inf"), []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _App)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


class ConsoleCloner(Cloner):
    """A stand-in VM: its 'guest' writes console lines to a file and starts answering when it
    writes the listening mark (or never, with mark=False)."""

    kind = "vm"
    start_method = "boot"
    ready_timeout_s = 3.0

    def __init__(self, url: str, log: Path, mark: bool = True) -> None:
        super().__init__("twinlab-dev-vm", None, None)
        self.url, self.log, self.mark = url, log, mark

    @property
    def limit_mib(self) -> float:
        return 512.0

    def existing_names(self) -> list[str]:
        return []

    def start(self, name: str) -> Clone:
        self.log.unlink(missing_ok=True)
        created = time.monotonic()
        clone = Clone("vm", name, self.url, created, watch=ConsoleWatch(self.log, created))
        lines = [(0.1, "twinlab-stage: initramfs uptime 0.05 s")]
        if self.mark:
            _App.listening_at = created + 0.3
            lines.append((0.3, listening_mark(time.time() + 0.3)))
        _write_lines(self.log, lines)
        return clone

    def remove(self, clone: Clone) -> None:
        clone.watch.close()

    def memory(self, clone: Clone) -> footprint.MemoryReading:
        raise NotImplementedError


def test_r1_polls_only_after_the_listening_mark_and_samples_each_stage(
    app: http.server.HTTPServer, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{app.server_address[1]}/healthz"
    samples = measure_start_times(
        ConsoleCloner(url, tmp_path / "c.log"), "libvirt://x", run_tags("tcg"), repeats=2
    )
    # the observer effect guard: no request reached the app before it said it listens
    assert _App.requests == [200, 200]
    first = [s for s in samples if s.metric == "time_to_first_response_s"]
    assert len(first) == 2 and all(0.3 <= float(s.value) < 1.0 for s in first)
    assert first[0].metadata["poll_started_at"] == "the app's listening mark"
    stages = [s for s in samples if s.metric == "start_stage_s" and s.metadata["repeat"] == 1]
    assert [s.metadata["stage"] for s in stages] == [
        "kernel_entry",
        "initramfs",
        "app_listening",
        "first_200",
    ]
    assert stages[-1].value == first[0].value


def test_r1_fails_naming_the_missing_listening_mark(
    app: http.server.HTTPServer, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{app.server_address[1]}/healthz"
    cloner = ConsoleCloner(url, tmp_path / "c.log", mark=False)
    with pytest.raises(ReadinessTimeoutError, match=r"no listening mark within 0\.5 s"):
        measure_start_times(cloner, "libvirt://x", run_tags("tcg"), repeats=1, timeout_s=0.5)
    assert _App.requests == []


def test_an_instance_without_marks_is_polled_from_the_create_call() -> None:
    watch = NoMarks()
    assert not watch.has_listening_mark
    assert watch.wait_listening(time.monotonic() + 10) is None and watch.stages() == {}


def _stage_samples() -> list:  # type: ignore[type-arg]
    tags = run_tags("tcg")
    from scripts.checks.results.samples import VariantLabel

    samples = []
    for variant, kind, stages in (
        ("container", "container", {"start_call": 0.05, "process_exec": 0.3, "first_200": 0.6}),
        ("vm", "vm", {"qemu_running": 0.2, "init": 2.0, "app_listening": 4.5, "first_200": 5.0}),
    ):
        for repeat in range(5):
            for index, (stage, seconds) in enumerate(stages.items()):
                samples.append(
                    tags.sample(
                        "start_stage_s",
                        seconds + 0.01 * repeat,
                        "s",
                        "t",
                        VariantLabel(variant, kind),
                        "R1",
                        stage=stage,
                        stage_index=index,
                    )
                )
    return samples


def test_the_report_stacks_stage_medians_per_variant(tmp_path: Path) -> None:
    samples = _stage_samples()
    rows = stage_summaries(samples)
    assert [stage for stage, _ in rows["vm"]] == [
        "qemu_running",
        "init",
        "app_listening",
        "first_200",
    ]
    assert rows["vm"][-1][1].median == pytest.approx(5.02) and rows["vm"][-1][1].n == 5
    assert plot_start_stages(samples, tmp_path) == [PLOT_FILE]
    assert (tmp_path / PLOT_FILE).stat().st_size > 1000
    lines = stage_lines(samples)
    assert "| vm | first_200 | 5 | 5.02 | 5-5.04 |" in "\n".join(lines)
    assert stage_lines([]) == [] and plot_start_stages([], tmp_path / "none") == []


def test_the_vm_image_writes_what_the_console_watch_reads() -> None:
    from workloads.images import recipe
    from workloads.images.initramfs import INIT_SCRIPT

    unit = recipe.systemd_app_unit()
    assert "StandardError=tty" in unit and "TTYPath=/dev/console" in unit
    script = INIT_SCRIPT.read_text()
    # the stage() helper's line, filled in as the shell would
    template = next(line for line in script.splitlines() if "twinlab-stage:" in line)
    for name in ("initramfs", "init"):
        assert f"stage {name}\n" in script
        line = template.replace("$1", name).replace("$uptime", "12.34")
        stage = guest_stage(line)
        assert stage is not None and (stage.name, stage.uptime_s) == (name, 12.34)
