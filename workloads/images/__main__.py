"""python -m workloads.images build [--force] | show | boot-test [--runs N] | prune"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from .build import ImagesNotBuiltError, build_images, find_images, prune_images
from .cmdline import BadSshKeyError
from .steps import BuildError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.images", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the container image and the VM disk")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    commands.add_parser("show", help="print the manifest of the current build")
    commands.add_parser("prune", help="delete builds of other recipes (cache dirs, docker tags)")
    boot = commands.add_parser("boot-test", help="boot the VM under QEMU, time the first 200")
    boot.add_argument("--runs", type=int, default=3, help="boots to measure (default 3)")
    boot.add_argument("--memory-mib", type=int, default=512)
    boot.add_argument("--accel", default="tcg", help="QEMU accelerator (default tcg)")
    boot.add_argument("--cpu", default=None, help="QEMU CPU model (default: QEMU's own)")
    boot.add_argument(
        "--no-rng",
        dest="rng",
        action="store_false",
        help="leave out the virtio-rng device the deployed VM has (entropy from the host)",
    )
    boot.add_argument("--timeout-s", type=float, default=90.0, help="give up on a boot after")
    args = parser.parse_args(argv)

    console = Console(stderr=True)
    try:
        if args.command == "build":
            images = build_images(force=args.force, console=console)
            print(images.directory / "manifest.json")
        elif args.command == "show":
            print(find_images().to_json(), end="")
        elif args.command == "prune":
            for removed in prune_images(console):
                print(f"removed {removed}")
        else:
            from .boottest import boot_test

            return boot_test(
                find_images(),
                runs=args.runs,
                memory_mib=args.memory_mib,
                accel=args.accel,
                cpu=args.cpu,
                rng=args.rng,
                timeout_s=args.timeout_s,
                console=console,
            )
    except (BuildError, ImagesNotBuiltError, BadSshKeyError) as error:
        console.print(f"[red]error:[/red] {error}", markup=True, highlight=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
