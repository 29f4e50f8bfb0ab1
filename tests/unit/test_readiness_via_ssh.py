"""`pulumi up`'s readiness wait on a host reached over SSH goes through that host's SSH (the
app's port is on the host's loopback), and only then; each attempt's failure is reported as
the local wait reports it. (The SSH side itself runs in tests/integration/test_remote_stack.py
and test_nothing_local.py, whose `up` deploys over the loopback sshd.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from components import readiness
from components.http_wait import require_http_200
from components.spec import Placement

pytestmark = pytest.mark.unit
VIA = {"user": "root", "host": "127.0.0.1", "port": 2222, "keyPath": "/k"}


class FakeHostHttp:
    """Answers like an app that boots: refused, then 503, then 200."""

    opened: ClassVar[list[Mapping[str, Any]]] = []
    asked: ClassVar[list[str]] = []

    def __init__(self, ssh: Mapping[str, Any]) -> None:
        self.opened.append(ssh)
        self.answers: list[int | None] = [None, 503, 200]

    def status(self, url: str, _timeout_s: float) -> int:
        self.asked.append(url)
        answer = self.answers.pop(0)
        if answer is None:
            raise ConnectionRefusedError("Connection refused on root@127.0.0.1:2222")
        return answer

    def __enter__(self) -> FakeHostHttp:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass


def test_the_wait_on_a_remote_host_goes_through_its_ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "HttpOverSsh", FakeHostHttp)
    props = {"url": "http://127.0.0.1:18081/healthz", "instance_id": "i", "timeout_s": 5}
    created = readiness._HttpReadyProvider().create({**props, "via": VIA})
    assert FakeHostHttp.opened == [VIA]
    assert FakeHostHttp.asked == [props["url"]] * 3  # refused, 503, then 200
    assert created.outs is not None and created.outs["ready_s"] >= 0


def test_a_local_host_is_waited_on_from_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "HttpOverSsh", None)  # must not be used
    monkeypatch.setattr(readiness, "require_http_200", lambda url, _t: 0.5)
    props = {"url": "http://127.0.0.1:1/healthz", "instance_id": "i", "timeout_s": 5, "via": None}
    outs = readiness._HttpReadyProvider().create(props).outs
    assert outs is not None and outs["ready_s"] == 0.5


def test_a_remote_wait_that_never_gets_200_names_the_last_answer() -> None:
    def refused(_url: str, _timeout_s: float) -> int:
        raise ConnectionRefusedError("Connection refused on root@h:22")

    with pytest.raises(TimeoutError, match="Connection refused on root@h:22"):
        require_http_200("http://127.0.0.1:1/healthz", 0.2, refused)


def test_only_a_placement_over_ssh_has_an_ssh_way_in() -> None:
    local = Placement("unix:///var/run/docker.sock", "qemu:///system", "tcg", "/p")
    remote = Placement(
        "ssh://root@127.0.0.1:2222", "qemu+ssh://root@127.0.0.1:2222/system", "tcg", "/p", "/k"
    )
    assert local.ssh is None
    assert remote.ssh == VIA
