"""Dependencies go one way: components/ (the stack program's floor) imports nothing of
scripts/ (the checks), and each shared fact has one definition."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_components_import_nothing_of_scripts() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if m.startswith("scripts")
        )
        for path in (ROOT / "components").rglob("*.py")
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_virt_mode_is_defined_once() -> None:
    definitions = [
        str(path.relative_to(ROOT))
        for folder in ("components", "scripts", "workloads")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"^VirtMode\b.*=", path.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert definitions == ["components/virt_mode.py"]
