#!/usr/bin/env python
"""Print the figures of the last scale-out and fault-scenario runs as a Markdown table.

Each run writes `<scenario>.json` into HUB_FAULTS_REPORT_DIR (default var/faults/);
docs/contributors/reliability.md quotes this table.

    .venv/bin/python scripts/faults_report.py [DIR]
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["scale-out", "feed-cluster", "kill-mid-intake-and-dispatch", "erp-down", "vtex-429-503", "postgres-restart",
         "redis-restart"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    directory = Path(argv[0]) if argv else ROOT / "var" / "faults"
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}
    if not runs:
        print(f"no results in {directory}")
        return 1
    print("| scenario | orders | faults injected | lost | duplicates beyond the key | repeats covered by the key "
          "| start-handling calls (ok) | duration | time to recover |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in sorted(runs, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        r = runs[name]
        ttr = f"{r['time_to_recover_s']:.0f} s" if r.get("time_to_recover_s") is not None else "-"
        print(f"| {name} | {r['orders']} | {r['faults'] or 'none'} | {r['orders_lost']} | {r['orders_with_two_keys']} "
              f"| {r['repeats_covered_by_key']} | {r['start_handling_calls']} ({r['start_handling_ok']}) "
              f"| {r['duration_s']:.0f} s | {ttr} |")
    for name, r in runs.items():
        if r.get("violations"):
            print(f"\n{name}: VIOLATIONS {r['violations']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
