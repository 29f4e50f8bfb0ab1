"""Probe any container, VM or host by URL and show the samples side by side.

    python -m scripts.checks.probes docker://NAME "ssh://twin@127.0.0.1:PORT?key=KEY"
    python -m scripts.checks.probes --read-only --out results/probes.jsonl docker://NAME

The host (local://) is always measured too, as the baseline column.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from components.errors import TwinlabError
from components.virt_mode import load_record
from scripts.checks.probes import ProbesFailedError, host_baseline, run_isolation, run_os_probes
from scripts.checks.results.samples import Sample, write_samples
from scripts.checks.targets.target import Target, parse_target
from scripts.termination import run_main

VALUE_WIDTH = 36


def table(samples: list[Sample]) -> Table:
    targets = list(dict.fromkeys(sample.target for sample in samples))
    view = Table(title="probe samples (host = local://)")
    view.add_column("metric", no_wrap=True)
    for target in targets:
        view.add_column(target.split("?")[0], overflow="fold")
    view.add_column("claims", no_wrap=True)
    rows: dict[str, dict[str, str]] = {}
    claims: dict[str, str] = {}
    for sample in samples:
        shown = str(sample.value)
        shown = shown if len(shown) <= VALUE_WIDTH else shown[: VALUE_WIDTH - 1] + "…"
        value = f"{shown} {sample.unit}".strip()
        if sample.metadata.get("inconclusive") is True and sample.value != "inconclusive":
            value += " (inconclusive)"
        rows.setdefault(sample.metric, {})[sample.target] = value
        claims[sample.metric] = " ".join(sample.claims)
    for metric, values in rows.items():
        view.add_row(metric, *(values.get(target, "") for target in targets), claims[metric])
    return view


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.checks.probes", description=__doc__)
    parser.add_argument("targets", nargs="+", help="docker://NAME, ssh://USER@HOST:PORT?key=KEY")
    parser.add_argument("--read-only", action="store_true", help="skip module load/sysctl write")
    parser.add_argument("--out", type=Path, help="write the samples as JSON Lines")
    record = load_record()
    parser.add_argument("--virt-mode", default=record.mode if record else "tcg")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    run_id = time.strftime("probes-%Y%m%dT%H%M%S")
    samples: list[Sample] = []
    try:
        targets: list[Target] = [parse_target(url) for url in args.targets]
        with console.status("probing") as status, host_baseline() as baseline:

            def started(target: Target, probes: str) -> None:
                status.update(f"{target.url.split('?')[0]}: {probes}")

            samples = run_os_probes(
                targets,
                run_id=run_id,
                virt_mode=args.virt_mode,
                baseline=baseline,
                on_probe=started,
            )
            samples += run_isolation(
                targets,
                run_id=run_id,
                virt_mode=args.virt_mode,
                baseline=baseline,
                state_changing=not args.read_only,
                on_probe=started,
            )
        for target in targets:
            target.close()
    except ProbesFailedError as failed:
        Console().print(table(samples + failed.samples))
        console.print(f"[red]{failed}[/red]")
        return 1
    except TwinlabError as error:
        console.print(f"[red]{error}[/red]")
        return 1
    Console().print(table(samples))
    if args.out:
        write_samples(args.out, samples)
        console.print(f"{len(samples)} samples written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
