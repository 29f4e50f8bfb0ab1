"""The restored-VM variant through the stack program: named in `twinlab:variants`, `pulumi up`
restores it from the cached snapshot (making the snapshot first if this recipe has none), it
answers 200 on its own port with the app version of the images, the checks read it as a VM of
its own column, and destroy leaves nothing of it."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from components import outputs
from components.naming import stack_prefix
from scripts import leftovers
from tests.deploy import ci_stack_config, deployed

pytestmark = pytest.mark.integration


def test_the_restored_vm_deploys_answers_and_leaves_nothing() -> None:
    name = ""
    with deployed(ci_stack_config(variants="vm-restored")) as (stack, stack_outputs):
        name = stack.name
        variants: dict[str, Any] = stack_outputs[outputs.VARIANTS]
        assert list(variants) == ["vm-restored"]
        restored = variants["vm-restored"]
        assert restored[outputs.KIND] == "vm"
        assert restored[outputs.INSTANCE_NAME] == f"{stack_prefix(name)}-vm-restored"
        with urllib.request.urlopen(restored[outputs.URL] + "/info", timeout=10) as answer:
            assert answer.status == 200
            info = json.loads(answer.read())
        assert info.get("version") == stack_outputs[outputs.APP_VERSION], info
        skipped = stack_outputs[outputs.SKIPPED_VARIANTS]
        assert "container" not in skipped  # named variants only: nothing else is "skipped"
    assert name
    assert leftovers.find(f"{stack_prefix(name)}-").count() == 0
