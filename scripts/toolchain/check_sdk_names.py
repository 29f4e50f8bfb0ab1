"""Check that the bridged providers speak the names the published Python SDKs send.

Our provider binaries map Terraform providers onto Pulumi names themselves (the upstream
provider modules are not served), so a wrong token or property name would only show up as a
failed deployment. This compares each schema.json that build.sh generated with the installed
pulumi_docker and pulumi_libvirt packages.

    .venv/bin/python scripts/toolchain/check_sdk_names.py      # exit 0 when every name matches
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

PULUMI_VERSION = "3.259.0"
PROVIDERS = {"docker": "pulumi_docker", "libvirt": "pulumi_libvirt"}

# Property names an SDK module declares: getters named explicitly, or plain getters whose
# Python name is the wire name (possibly behind a deprecation decorator).
_NAMED_GETTER = re.compile(r'getter\(name="([^"]+)"\)')
_PLAIN_GETTER = re.compile(r"@pulumi\.getter\n(?:\s+@\S+.*\n)*\s+def (\w+)\(")


@dataclass(frozen=True)
class Mismatch:
    token: str
    missing_in_sdk: tuple[str, ...]
    missing_in_schema: tuple[str, ...]


def sdk_module_file(package_dir: Path, token: str) -> Path:
    """`docker:index/remoteImage:RemoteImage` -> <package_dir>/remote_image.py."""
    member = token.split(":")[1].split("/")[1]
    return package_dir / (re.sub(r"(?<!^)(?=[A-Z])", "_", member).lower() + ".py")


def sdk_property_names(source: str) -> set[str]:
    return set(_NAMED_GETTER.findall(source)) | set(_PLAIN_GETTER.findall(source))


def schema_property_names(spec: dict[str, object]) -> set[str]:
    names: set[str] = set()
    for key in ("inputProperties", "properties"):
        value = spec.get(key)
        if isinstance(value, dict):
            names |= set(value)
    for key in ("inputs", "outputs"):
        value = spec.get(key)
        if isinstance(value, dict) and isinstance(value.get("properties"), dict):
            names |= set(value["properties"])
    return names - {"id"}


def compare(schema: dict[str, dict[str, dict[str, object]]], package_dir: Path) -> list[Mismatch]:
    mismatches = []
    members = {**schema.get("resources", {}), **schema.get("functions", {})}
    for token, spec in sorted(members.items()):
        if token.startswith("pulumi:"):  # the provider's own functions, not in the SDK
            continue
        path = sdk_module_file(package_dir, token)
        sdk_names = sdk_property_names(path.read_text()) if path.exists() else set()
        schema_names = schema_property_names(spec)
        missing_in_sdk = tuple(sorted(schema_names - sdk_names))
        missing_in_schema = tuple(sorted(sdk_names - schema_names - {"id", "urn"}))
        if not path.exists() or missing_in_sdk or missing_in_schema:
            mismatches.append(Mismatch(token, missing_in_sdk, missing_in_schema))
    return mismatches


def main() -> int:
    cache = Path(os.environ.get("TWINLAB_CACHE", Path.home() / ".cache" / "twinlab"))
    build = cache / "toolchain" / f"pulumi-v{PULUMI_VERSION}" / "build"
    failed = False
    for provider, module in PROVIDERS.items():
        schema_path = build / f"pulumi-resource-{provider}" / "schema.json"
        spec = importlib.util.find_spec(module)
        if not schema_path.exists() or spec is None or spec.origin is None:
            print(f"{provider}: missing {schema_path} or the {module} package; run build.sh first")
            failed = True
            continue
        mismatches = compare(json.loads(schema_path.read_text()), Path(spec.origin).parent)
        for m in mismatches:
            print(
                f"{provider}: {m.token}: not in SDK {list(m.missing_in_sdk)}, "
                f"not in schema {list(m.missing_in_schema)}"
            )
        print(f"{provider}: {len(mismatches)} mismatched members")
        failed = failed or bool(mismatches)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
