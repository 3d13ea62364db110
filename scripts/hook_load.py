#!/usr/bin/env python3
"""Load a running hub's hook endpoint with VTEX-like notifications and report latency.

It starts nothing: point it at a hook URL of a running hub (the path form with the secret, or
the header form with --key), e.g.

    .venv/bin/python scripts/hook_load.py --url http://127.0.0.1:8011/hooks/vtex/1/SECRET/ \\
        --account teststore -n 2000 -c 8

Each notification is for a distinct order (so every one is stored, none is a duplicate), sent
from C concurrent clients, each with its own keep-alive connection. Prints p50/p95/p99/max
latency, the throughput and every non-200 answer or network error.
"""
import argparse
import json
import math
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests


def notification(account, order_id, now):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int((now % 1) * 1e7):07d}Z"
    return {
        "Domain": "Fulfillment", "OrderId": order_id, "State": "ready-for-handling", "LastState": "window-to-cancel",
        "LastChange": stamp, "CurrentChange": stamp, "Origin": {"Account": account, "Key": "vtexappkey-load-test"},
    }


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))  # nearest rank
    return sorted_values[index]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the store's hook URL on a running hub")
    parser.add_argument("--account", default="teststore", help="the store's VTEX account name (Origin.Account)")
    parser.add_argument("--key", default="", help="send the secret in the `key` header (for the URL form without it)")
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--prefix", default="", help="order id prefix (default: random per run, so reruns store anew)")
    args = parser.parse_args(argv)

    prefix = args.prefix or uuid.uuid4().hex[:8]
    local = threading.local()
    headers = {"Content-Type": "application/json"}
    if args.key:
        headers["key"] = args.key

    def session():
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.trust_env = False  # never through an environment proxy
        return local.session

    # Ping first: a wrong URL or secret fails here, not 2000 times.
    ping = session().post(args.url, data=json.dumps({"hookConfig": "ping"}), headers=headers, timeout=args.timeout)
    if ping.status_code != 200:
        print(f"ping answered {ping.status_code}: {ping.text[:300]}", file=sys.stderr)
        return 2

    def one(n):
        body = json.dumps(notification(args.account, f"{prefix}{n:07d}-01", time.time()))
        started = time.perf_counter()
        try:
            response = session().post(args.url, data=body, headers=headers, timeout=args.timeout)
            outcome = str(response.status_code) if response.status_code != 200 else next(iter(response.json()), "?")
        except requests.RequestException as exc:
            outcome = type(exc).__name__
        return time.perf_counter() - started, outcome

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        results = list(pool.map(one, range(args.requests)))
    wall = time.perf_counter() - started

    latencies = sorted(r[0] * 1000 for r in results)
    outcomes = Counter(r[1] for r in results)
    errors = sum(v for k, v in outcomes.items() if k not in ("stored", "duplicate"))
    print(f"{args.requests} notifications, {args.concurrency} clients, {wall:.1f} s, {args.requests / wall:.0f} req/s")
    print(f"latency ms: p50 {percentile(latencies, 0.50):.1f}  p95 {percentile(latencies, 0.95):.1f}  "
          f"p99 {percentile(latencies, 0.99):.1f}  max {latencies[-1]:.1f}  mean {statistics.fmean(latencies):.1f}")
    print("answers: " + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()))
    print(f"errors: {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
