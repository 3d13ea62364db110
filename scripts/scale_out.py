#!/usr/bin/env python
"""Scale-out check: two `qcluster` processes on one PostgreSQL database and one Redis broker
deliver 1,000 orders exactly once each.

What it does (every process in its own process group, every wait bounded, everything stopped
and removed at the end, also on failure or Ctrl-C):

1. starts the VTEX sandbox and a loopback ERP as processes (`python -m vtex_sandbox`,
   `python -m vtex_sandbox.erp`) and a private `redis-server --save ''` on a free port;
2. creates a fresh PostgreSQL database (on HUB_FAULTS_PG_URL's server, default the local one;
   `--private-pg` starts a throw-away instance instead), migrates it, creates a store pointing at
   the sandbox with a webhook binding to the ERP;
3. seeds ORDERS ready-for-handling orders in the sandbox;
4. starts CLUSTERS `manage.py qcluster` processes (Redis broker, Q_WORKERS each), asks for a first
   feed cycle (as `runhub` does) and waits until every order is delivered and start-handled;
5. checks the promises and prints the figures; exits 1 on any violation, 2 on a timeout or a crash.

    .venv/bin/python scripts/scale_out.py [--orders 1000] [--clusters 2] [--workers 3] [--timeout 420]
"""
import argparse
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults.harness import HarnessError, Scenario, log  # noqa: E402


def process_group_members(pgid):
    """The pids whose process group is `pgid` (a cluster's sentinel, monitor, pusher and workers)."""
    pids = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    raw = fh.read().decode("ascii", "replace")
            except OSError:
                continue
            fields = raw[raw.rfind(")") + 2:].split()
            if int(fields[2]) == pgid:
                pids.add(int(name))
    return pids


def deliveries_per_cluster(scenario, members):
    """Successful adapter calls by the cluster whose worker made them (SyncAttempt.worker ends in pid-uuid)."""
    counts = Counter()
    for worker, n in scenario.hub.query("SELECT worker, count(*) FROM integration_syncattempt WHERE outcome = 'succeeded' GROUP BY worker"):
        try:
            pid = int(worker.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            pid = None
        owner = next((name for name, pids in members.items() if pid in pids), "unknown")
        counts[owner] += n
    return dict(counts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3, help="Q_WORKERS of each cluster")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="DISPATCH_CONCURRENCY (threads per dispatch task); 4 keeps 2 x 3 workers within a "
                             "100-connection PostgreSQL and matches a 2-core machine")
    parser.add_argument("--timeout", type=float, default=240, help="seconds to wait for every order")
    parser.add_argument("--private-pg", action="store_true", help="a throw-away PostgreSQL instead of HUB_FAULTS_PG_URL's server")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args(argv)

    def interrupt(signum, frame):  # SIGTERM (a CI timeout) unwinds like Ctrl-C: every process is stopped
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    started = time.monotonic()
    try:
        with Scenario("scale-out", orders=args.orders, workers=args.workers, private_pg=args.private_pg,
                      keep_workdir=args.keep, fast=False,
                      hub_env={"DISPATCH_CONCURRENCY": str(args.concurrency), "VTEX_DEFAULT_RETRY_AFTER": "1"}) as run:
            run.seed()
            clusters = run.start_clusters(args.clusters)
            run.hub.kick_feed_cycle()
            log(f"{args.clusters} qclusters started (Redis broker, Q_WORKERS={args.workers} each); waiting for {args.orders} orders")
            try:
                run.wait_for_all(args.timeout)
            except HarnessError as exc:
                log(f"FAILED: {exc}")
                for proc in clusters:
                    log(f"--- {proc.name} (last lines)\n{proc.tail(2500)}")
                run.finish()
                return 2
            members = {proc.name: process_group_members(proc.pid) for proc in clusters}
            outcome = run.finish()
            outcome.notes["deliveries_per_cluster"] = deliveries_per_cluster(run, members)
            outcome.notes["clusters"] = args.clusters
            outcome.notes["workers_per_cluster"] = args.workers
            outcome.save()
            busy = [name for name, n in outcome.notes["deliveries_per_cluster"].items() if n]
            print()
            print("scale-out figures")
            print(f"  orders                      {outcome.orders}")
            print(f"  clusters x workers          {args.clusters} x {args.workers} (Redis broker, PostgreSQL)")
            print(f"  duration                    {outcome.duration_s:.1f} s  ({outcome.orders / max(outcome.duration_s, 0.1):.1f} orders/s)")
            print(f"  deliveries                  {outcome.deliveries} ({outcome.unique_keys} idempotency keys)")
            print(f"  duplicates                  {outcome.repeats_covered_by_key} repeats, all covered by the idempotency key;"
                  f" {outcome.orders_with_two_keys} orders under two keys")
            print(f"  deliveries per cluster      {outcome.notes['deliveries_per_cluster']}")
            print(f"  start-handling calls        {outcome.start_handling_calls} ({outcome.start_handling_ok} successful)")
            print(f"  pending syncs / claimed     {outcome.pending_syncs} / {outcome.claimed_orders}")
            print(f"  feed depth                  {outcome.feed_depth}")
            if len(busy) < min(args.clusters, 2):
                outcome.violations.append(f"only {busy} delivered orders: the clusters did not share the work")
            if outcome.violations:
                print("VIOLATIONS:")
                for violation in outcome.violations:
                    print(f"  - {violation}")
                return 1
            print(f"OK: every order delivered once per binding and start-handled once ({time.monotonic() - started:.0f} s in all)")
            return 0
    except KeyboardInterrupt:
        log("interrupted: every process was stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
