"""Wait, as part of `pulumi up`, until an instance answers HTTP 200, and record how long it took.

So `pulumi up` returns only when both variants serve, and its outputs carry the time from the
instance being started to its first HTTP 200.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from components.http_wait import require_http_200


class _HttpReadyProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        seconds = require_http_200(props["url"], float(props["timeout_s"]))
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
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            _HttpReadyProvider(),
            name,
            {"url": url, "instance_id": instance_id, "timeout_s": timeout_s, "ready_s": None},
            opts,
        )
