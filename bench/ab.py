#!/usr/bin/env python3
"""Same-run A/B of `flowlog bench` figures: two installations of flowlog (their `flowlog`
commands), alternating A B, B A, A B ... for each benchmark, on the same database server.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
      python3 bench/ab.py --a .venv/bin/flowlog --b ../before/.venv/bin/flowlog \\
      --pairs 3 flows http append

For each figure of each benchmark's JSON (`--quick` by default) it prints A's median, B's
median, and the median of the pairwise ratios A/B: pairing keeps the ratio meaningful when the
machine's speed drifts. Figures that are themselves ratios against a baseline measured in the
same run (`ratio_*`) are the ones to quote; the rest show what moved."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from typing import Any

NEUTRAL = tempfile.gettempdir()
"""Where the benchmarks run: a checkout's folders in the working directory would shadow what an
installation's own processes import (`python -m ...` puts the working directory first)."""


def run(command: str, bench: str, size: str) -> dict[str, Any]:
    done = subprocess.run(
        [command, "bench", bench, f"--{size}", "--json", "--no-progress"],
        capture_output=True, text=True, check=False, cwd=NEUTRAL,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{command} bench {bench} failed ({done.returncode}):\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="flowlog command of A (the change)")
    parser.add_argument("--b", required=True, help="flowlog command of B (the baseline)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--size", choices=("quick", "smoke"), default="quick")
    parser.add_argument("--only", default="", help="comma-separated figure name prefixes")
    parser.add_argument("benches", nargs="+")
    args = parser.parse_args()
    prefixes = tuple(p for p in args.only.split(",") if p)
    for bench in args.benches:
        runs: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
        for pair in range(args.pairs):
            order = ("a", "b") if pair % 2 == 0 else ("b", "a")
            for side in order:
                runs[side].append(run(getattr(args, side), bench, args.size))
                print(f"{bench}: pair {pair + 1}/{args.pairs}, {side} done", file=sys.stderr)
        print(f"\n{bench} ({args.size}, {args.pairs} alternating pairs)")
        print(f"{'figure':44} {'A median':>12} {'B median':>12} {'A/B':>7}")
        for key, value in runs["a"][0].items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if prefixes and not key.startswith(prefixes):
                continue
            a = [r[key] for r in runs["a"] if key in r]
            b = [r.get(key) for r in runs["b"]]
            if len(a) != args.pairs:
                continue
            if None in b:  # a figure the baseline does not have: A's alone
                print(f"{key:44} {statistics.median(a):12.4g} {'-':>12} {'-':>7}")
                continue
            ratios = [x / y for x, y in zip(a, b, strict=True) if y]
            ratio = f"{statistics.median(ratios):7.3f}" if ratios else "      -"
            print(f"{key:44} {statistics.median(a):12.4g} {statistics.median(b):12.4g} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
