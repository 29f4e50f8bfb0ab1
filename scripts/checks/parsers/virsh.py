"""Parsers for virsh's table output."""

from __future__ import annotations


def parse_name_list(text: str) -> list[str]:
    """`virsh list --all --name` / `pool-list --all --name`: one name a line, blanks skipped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_vol_list(text: str) -> dict[str, str]:
    """`virsh vol-list POOL`: volume name -> path, from the table below the dashed rule."""
    volumes = {}
    below_rule = False
    for line in text.splitlines():
        if line.strip().startswith("---"):
            below_rule = True
            continue
        fields = line.split(None, 1)
        if below_rule and len(fields) == 2:
            volumes[fields[0]] = fields[1].strip()
    return volumes
