"""Write the Markdown claim catalogue from the claim modules.

python -m scripts.checks.claims            # rewrite scripts/checks/claims/README.md
python -m scripts.checks.claims --check    # exit 1 if the committed file is out of date
"""

from __future__ import annotations

import argparse
import sys

from scripts.checks.claims.catalogue import CATALOGUE_PATH, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.checks.claims")
    parser.add_argument("--check", action="store_true", help="only check the file is current")
    args = parser.parse_args(argv)
    text = render()
    current = CATALOGUE_PATH.read_text(encoding="utf-8") if CATALOGUE_PATH.exists() else ""
    if args.check:
        if current != text:
            print(f"{CATALOGUE_PATH} is out of date: run python -m scripts.checks.claims")
            return 1
        return 0
    CATALOGUE_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {CATALOGUE_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
