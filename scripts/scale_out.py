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

It also measures: orders/s, the CPU of each cluster (its process tree, from /proc) per order it
delivered, the CPU of the PostgreSQL server, of the private Redis and of the sandbox and ERP, how
busy the machine was, and VTEX's busiest minute per route against the hub's caps; from these it
says what limits the next cluster (the machine's CPU, the database, the broker or VTEX's caps).
`--clusters 2,4` runs once per count (a fresh database and Redis each) and prints them side by side.

    .venv/bin/python scripts/scale_out.py [--orders 1000] [--clusters 2] [--workers 3] [--timeout 420]
    .venv/bin/python scripts/scale_out.py --clusters 2,4 --orders 2000 --erp-latency-ms 100
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

from hub_bench.procs import TreeSampler, machine_cpu_seconds, server_roots  # noqa: E402
from tests.faults.harness import HarnessError, Scenario, log  # noqa: E402

# The hub's default caps (integration/settings.py VTEX_RATE_LIMITS), for the "what limits next" line.
DEFAULT_CAPS = {"get_order": 6000, "feed_retrieve": 3000, "feed_commit": 3000, "start_handling": 3000}


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
    parser.add_argument("--clusters", default="2", help="qcluster processes; a list (2,4) runs once per count and compares")
    parser.add_argument("--workers", type=int, default=3, help="Q_WORKERS of each cluster")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="DISPATCH_CONCURRENCY (threads per dispatch task); 4 keeps 2 x 3 workers within a "
                             "100-connection PostgreSQL and matches a 2-core machine")
    parser.add_argument("--erp-latency-ms", type=int, default=0, help="latency of the loopback ERP (default 0)")
    parser.add_argument("--timeout", type=float, default=240, help="seconds to wait for every order")
    parser.add_argument("--private-pg", action="store_true", help="a throw-away PostgreSQL instead of HUB_FAULTS_PG_URL's server")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args(argv)
    try:
        counts = [int(x) for x in str(args.clusters).split(",") if x.strip()]
    except ValueError:
        parser.error("--clusters takes a number or a list such as 2,4")
    if not counts or min(counts) < 1:
        parser.error("--clusters must be at least 1")

    def interrupt(signum, frame):  # SIGTERM (a CI timeout) unwinds like Ctrl-C: every process is stopped
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    status, figures = 0, []
    for count in counts:
        code, measured = run_once(args, count)
        status = status or code
        if measured:
            figures.append(measured)
        if code == 130:
            return code
    if len(figures) > 1:
        print()
        print("scale-out compared (one PostgreSQL, one Redis, this machine)")
        print(f"  {'clusters x workers':<22}{'orders/s':>10}{'hub CPU/order':>15}{'PostgreSQL CPU/order':>22}"
              f"{'Redis CPU/order':>17}{'machine busy':>14}  limits next")
        for f in figures:
            print(f"  {f['clusters']} x {f['workers']:<18}{f['per_second']:>10.1f}{f['hub_ms']:>12.1f} ms"
                  f"{f['postgres_ms']:>19.1f} ms{f['redis_ms']:>14.1f} ms{f['busy'] * 100:>13.0f}%  {f['limit']}")
    return status


def limits_next(busy, cpu, orders_per_second, peaks):
    """A sentence on what the next cluster would run into, from the measured shares."""
    heavy = max(cpu.items(), key=lambda kv: kv[1])
    capped = [(route, peak, DEFAULT_CAPS[route]) for route, peak in peaks.items() if route in DEFAULT_CAPS and peak >= 0.8 * DEFAULT_CAPS[route]]
    if capped:
        route, peak, cap = max(capped, key=lambda r: r[1] / r[2])
        return f"VTEX's cap on {route}: {peak}/min of {cap} a store in the busiest minute"
    if busy >= 0.85:
        total = sum(cpu.values()) or 1.0
        shares = ", ".join(f"{name} {seconds * 100 / total:.0f}%" for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]))
        return (f"the machine's CPU ({busy * 100:.0f}% busy; of the measured CPU: {shares}): another cluster on this "
                f"machine adds work, not capacity; on another machine the next limit is {('the database' if cpu['PostgreSQL'] >= cpu['Redis'] else 'the broker')}")
    return (f"not CPU ({busy * 100:.0f}% busy): waiting on I/O and latency (the largest CPU user is {heavy[0]}); "
            f"more workers or dispatch threads per cluster")


def run_once(args, clusters_wanted):
    started = time.monotonic()
    try:
        with Scenario("scale-out", orders=args.orders, workers=args.workers, private_pg=args.private_pg,
                      keep_workdir=args.keep, fast=False, erp_latency_ms=args.erp_latency_ms,
                      hub_env={"DISPATCH_CONCURRENCY": str(args.concurrency), "VTEX_DEFAULT_RETRY_AFTER": "1"}) as run:
            run.seed()
            servers = TreeSampler([run.sandbox.proc.pid, run.erp.proc.pid], interval=5.0)
            redis = TreeSampler([run.redis.proc.pid], interval=5.0)
            postgres = TreeSampler(server_roots(("postgres",)), interval=5.0)
            cpu0 = {"servers": servers.cpu_seconds(), "redis": redis.cpu_seconds(), "postgres": postgres.cpu_seconds()}
            machine0 = machine_cpu_seconds()
            clusters = run.start_clusters(clusters_wanted)
            samplers = {proc.name: TreeSampler([proc.pid], interval=1.0).start() for proc in clusters}
            run.hub.kick_feed_cycle()
            log(f"{clusters_wanted} qclusters started (Redis broker, Q_WORKERS={args.workers} each); waiting for {args.orders} orders")
            try:
                run.wait_for_all(args.timeout)
            except HarnessError as exc:
                log(f"FAILED: {exc}")
                for proc in clusters:
                    log(f"--- {proc.name} (last lines)\n{proc.tail(2500)}")
                run.finish()
                return 2, None
            elapsed = time.monotonic() - run.started
            cluster_cpu = {name: sampler.cpu_seconds() for name, sampler in samplers.items()}
            for sampler in samplers.values():
                sampler.stop()
            machine1 = machine_cpu_seconds()
            cpu = {"hub": sum(cluster_cpu.values()), "PostgreSQL": postgres.cpu_seconds() - cpu0["postgres"],
                   "Redis": redis.cpu_seconds() - cpu0["redis"], "sandbox + ERP": servers.cpu_seconds() - cpu0["servers"]}
            busy = (machine1[0] - machine0[0]) / max(machine1[1] - machine0[1], 1e-9)
            peaks = run.sandbox.get("/_sandbox/stats").get("max_per_minute", {})
            members = {proc.name: process_group_members(proc.pid) for proc in clusters}
            outcome = run.finish()
            outcome.notes["deliveries_per_cluster"] = deliveries_per_cluster(run, members)
            outcome.notes["clusters"] = clusters_wanted
            outcome.notes["workers_per_cluster"] = args.workers
            outcome.notes["cpu_seconds"] = {k: round(v, 2) for k, v in cpu.items()}
            outcome.save()
            per_cluster = outcome.notes["deliveries_per_cluster"]
            busy_clusters = [name for name, n in per_cluster.items() if n]
            per_second = outcome.orders / max(elapsed, 0.1)
            limit = limits_next(busy, cpu, per_second, peaks)
            print()
            print("scale-out figures")
            print(f"  orders                      {outcome.orders}")
            print(f"  clusters x workers          {clusters_wanted} x {args.workers} (Redis broker, PostgreSQL)")
            print(f"  duration                    {elapsed:.1f} s  ({per_second:.1f} orders/s, from the clusters' start)")
            print(f"  deliveries                  {outcome.deliveries} ({outcome.unique_keys} idempotency keys)")
            print(f"  duplicates                  {outcome.repeats_covered_by_key} repeats, all covered by the idempotency key;"
                  f" {outcome.orders_with_two_keys} orders under two keys")
            print(f"  deliveries per cluster      {per_cluster}")
            for name in sorted(cluster_cpu):
                n = per_cluster.get(name, 0)
                share = f"{cluster_cpu[name] * 1000 / n:.1f} ms per order it delivered ({n})" if n else "it delivered none (start-up, polling)"
                print(f"  CPU of {name:<20} {cluster_cpu[name]:.1f} s = {share}")
            print(f"  hub CPU per order           {cpu['hub'] * 1000 / max(outcome.orders, 1):.1f} ms (every cluster)")
            print(f"  servers' CPU per order      PostgreSQL {cpu['PostgreSQL'] * 1000 / max(outcome.orders, 1):.1f} ms "
                  f"(every PostgreSQL server on the machine: other databases' work included), Redis {cpu['Redis'] * 1000 / max(outcome.orders, 1):.1f} ms, "
                  f"sandbox + ERP {cpu['sandbox + ERP'] * 1000 / max(outcome.orders, 1):.1f} ms")
            print(f"  machine                     {os.cpu_count()} cores {busy * 100:.0f}% busy; load average "
                  f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
            print(f"  VTEX busiest minute         " + ", ".join(f"{r} {peaks[r]}" for r in DEFAULT_CAPS if r in peaks))
            print(f"  limits next                 {limit}")
            print(f"  start-handling calls        {outcome.start_handling_calls} ({outcome.start_handling_ok} successful)")
            print(f"  pending syncs / claimed     {outcome.pending_syncs} / {outcome.claimed_orders}")
            print(f"  feed depth                  {outcome.feed_depth}")
            if len(busy_clusters) < min(clusters_wanted, 2):
                outcome.violations.append(f"only {busy_clusters} delivered orders: the clusters did not share the work")
            measured = {"clusters": clusters_wanted, "workers": args.workers, "per_second": per_second,
                        "hub_ms": cpu["hub"] * 1000 / max(outcome.orders, 1),
                        "postgres_ms": cpu["PostgreSQL"] * 1000 / max(outcome.orders, 1),
                        "redis_ms": cpu["Redis"] * 1000 / max(outcome.orders, 1), "busy": busy, "limit": limit}
            if outcome.violations:
                print("VIOLATIONS:")
                for violation in outcome.violations:
                    print(f"  - {violation}")
                return 1, measured
            print(f"OK: every order delivered once per binding and start-handled once ({time.monotonic() - started:.0f} s in all)")
            return 0, measured
    except KeyboardInterrupt:
        log("interrupted: every process was stopped")
        return 130, None


if __name__ == "__main__":
    sys.exit(main())
