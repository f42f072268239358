"""``python -m cs360_pipeline.demo SOURCES_DIR``: write the demo extracts from a shell."""

from __future__ import annotations

import argparse
from pathlib import Path

from cs360_pipeline.demo import generate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write Riverton demo extracts.")
    parser.add_argument("sources_dir", type=Path)
    parser.add_argument("--seed", type=int, default=360)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--end-month", default=None, help="YYYY-MM (default: last full month)")
    parser.add_argument("--months", type=int, default=36)
    args = parser.parse_args(argv)
    summary = generate(
        args.sources_dir,
        seed=args.seed,
        scale=args.scale,
        end_month=args.end_month,
        months=args.months,
        progress=print,
    )
    print(f"{summary.first_month} .. {summary.last_month} written to {args.sources_dir}")


if __name__ == "__main__":
    main()
