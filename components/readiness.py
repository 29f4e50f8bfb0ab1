"""Wait, as part of `pulumi up`, until an instance answers HTTP 200, and record how long it took.

So `pulumi up` returns only when both variants serve, and its outputs carry the time from the
instance being started to its first HTTP 200. On a host reached over SSH the app's port is on
that host's loopback: the wait goes through the host's SSH (components/http_over_ssh.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from components.http_over_ssh import HttpOverSsh
from components.http_wait import require_http_200


class _HttpReadyProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        url, timeout_s, via = props["url"], float(props["timeout_s"]), props.get("via")
        if via:
            with HttpOverSsh(via) as host:
                seconds = require_http_200(url, timeout_s, host.status)
        else:
            seconds = require_http_200(url, timeout_s)
        return CreateResult(id_=props["instance_id"], outs={**props, "ready_s": round(seconds, 3)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in ("url", "instance_id") if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**_olds, "timeout_s": news["timeout_s"]})


class HttpReady(Resource):
    ready_s: pulumi.Output[float]

    def __init__(
        self,
        name: str,
        url: pulumi.Input[str],
        instance_id: pulumi.Input[str],
        timeout_s: float,
        via: Mapping[str, Any] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`via`: the host's `ssh` (components/hosts.py) when the app is on a remote host."""
        super().__init__(
            _HttpReadyProvider(),
            name,
            {
                "url": url,
                "instance_id": instance_id,
                "timeout_s": timeout_s,
                "via": dict(via) if via else None,
                "ready_s": None,
            },
            opts,
        )
