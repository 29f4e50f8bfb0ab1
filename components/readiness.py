"""Wait, as part of `pulumi up`, until an instance answers HTTP 200, and record how long it took.

So `pulumi up` returns only when both variants serve, and its outputs carry the time from the
instance being started to its first HTTP 200.
"""

from __future__ import annotations

import time
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

POLL_INTERVAL_S = 0.1


def wait_for_http_200(url: str, timeout_s: float) -> float:
    """Seconds until `url` answered 200; raises TimeoutError naming the URL past `timeout_s`."""
    import urllib.error
    import urllib.request

    started = time.monotonic()
    last_error = "no answer"
    while time.monotonic() - started < timeout_s:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as error:
            last_error = str(error)
        time.sleep(POLL_INTERVAL_S)
    raise TimeoutError(f"{url} gave no HTTP 200 within {timeout_s:.0f} s (last: {last_error})")


class _HttpReadyProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        seconds = wait_for_http_200(props["url"], float(props["timeout_s"]))
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
