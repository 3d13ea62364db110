"""`python -m hub_bench` (`make bench`): the real pipeline against the sandbox, measured.

Feed intake, routing, dispatch and start-handling run in a real `qcluster` on a fresh database,
over HTTP to a VTEX sandbox and a loopback ERP running in processes of their own; a sequential
consumer gives the baseline. The README's "Performance" section says what the figures mean.
This process never sets up Django: the hub runs in child processes with their own environment.
"""
import argparse
import json
import os
import platform
import sys
import time

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"


class BenchmarkError(Exception):
    """A bad option or a failed run: printed as ``hub_bench: error: ...``, exit status 1."""


def parser():
    parser = argparse.ArgumentParser(
        prog="python -m hub_bench",
        description="Benchmark the hub end to end (feed, routing, dispatch, start-handling) against the VTEX sandbox.")
    parser.add_argument("--orders", type=int, default=None, help="pre-seeded backlog of the burst (default 2000)")
    parser.add_argument("--sandbox-latency-ms", type=int, default=50)
    parser.add_argument("--erp-latency-ms", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4, help="Q_WORKERS of the hub's qcluster (default 4)")
    parser.add_argument("--naive-orders", type=int, default=None, help="orders through the naive consumer (default 300)")
    parser.add_argument("--steady-rate", type=float, default=None, help="orders/s of the latency phase (default 10)")
    parser.add_argument("--steady-seconds", type=float, default=None, help="length of the latency phase (default 60)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-steady", action="store_true", help="no latency phase")
    parser.add_argument("--quick", action="store_true", help="small numbers everywhere (a smoke run)")
    parser.add_argument("--database-url", default="", help="PostgreSQL server for the run (a fresh bench_<n> database is created); default SQLite")
    parser.add_argument("--redis-url", default="", help="Redis broker for the run (with --database-url)")
    parser.add_argument("--also-postgres", action="store_true", help="after the SQLite run, the same run on PostgreSQL with the Redis broker")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help=f"for --also-postgres (default {DEFAULT_POSTGRES})")
    parser.add_argument("--postgres-redis-url", default=DEFAULT_REDIS, help=f"for --also-postgres (default {DEFAULT_REDIS})")
    parser.add_argument("--postgres-orders", type=int, default=None, help="orders of the PostgreSQL run (default: --orders)")
    parser.add_argument("--memory-scan", action="store_true", help="burst at 2,000 and 20,000 orders; print both memory peaks")
    parser.add_argument("--scan-orders", default="2000,20000", help=argparse.SUPPRESS)
    parser.add_argument("--cap-check", action="store_true",
                        help="one more burst with low VTEX rate caps, to show the hub stays under them")
    parser.add_argument("--profile", default="", metavar="DIR",
                        help="record the hub's processes with py-spy during each burst (raw stacks into DIR)")
    parser.add_argument("--keep", action="store_true", help="keep each run's temporary directory (logs, SQLite file)")
    parser.add_argument("--json", default="", help="also write every figure to this file")
    return parser


def run_benchmark(opts, stdout=sys.stdout, stderr=sys.stderr):
    from hub_bench import report
    from hub_bench.runner import RunConfig, run_hub, run_naive

    def write(text):
        stdout.write(text if text.endswith("\n") else text + "\n")
        stdout.flush()

    quick = opts["quick"]
    # `is None`, not `or`: an explicit 0 is refused below instead of meaning "the default".
    orders = opts["orders"] if opts["orders"] is not None else (200 if quick else 2000)
    naive_orders = opts["naive_orders"] if opts["naive_orders"] is not None else (20 if quick else 300)
    steady_rate = opts["steady_rate"] or (5.0 if quick else 10.0)
    steady_seconds = opts["steady_seconds"] if opts["steady_seconds"] is not None else (6.0 if quick else 60.0)
    if opts["skip_steady"]:
        steady_seconds = 0.0
    if orders < 1 or naive_orders < 1 or opts["workers"] < 1:
        raise BenchmarkError("--orders, --naive-orders and --workers must be positive")
    if opts["redis_url"] and not opts["database_url"]:
        raise BenchmarkError("--redis-url goes with --database-url (the Redis broker is for PostgreSQL set-ups)")

    def log(text):
        stderr.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        stderr.flush()

    common = dict(workers=opts["workers"], sandbox_latency_ms=opts["sandbox_latency_ms"],
                  erp_latency_ms=opts["erp_latency_ms"], keep=opts["keep"], log=log,
                  profile_dir=opts["profile"])
    started = time.monotonic()
    out = {"machine": _machine(), "runs": [], "naive": None}
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    write(f"VTEX order hub benchmark -- {out['machine']}; load average at start {load}")
    write(f"sandbox latency {opts['sandbox_latency_ms']} ms per VTEX call, ERP latency {opts['erp_latency_ms']} ms per delivery\n")

    naive = None
    if not opts["skip_naive"] and not opts["memory_scan"]:
        naive = run_naive(RunConfig(label="naive", orders=naive_orders, **common), naive_orders)
        out["naive"] = naive
        write(report.format_naive(naive) + "\n")

    runs = []
    if opts["memory_scan"]:
        sizes = [int(x) for x in opts["scan_orders"].split(",")]
        for size in sizes:
            runs.append(run_hub(RunConfig(label=f"memory scan {size:,}", orders=size, database_url=opts["database_url"],
                                          redis_url=opts["redis_url"], **common)))
            write(report.format_run(runs[-1]) + "\n")
    else:
        primary = "PostgreSQL" if opts["database_url"] else "SQLite"
        runs.append(run_hub(RunConfig(label=primary, orders=orders, database_url=opts["database_url"], redis_url=opts["redis_url"],
                                      steady_rate=steady_rate, steady_seconds=steady_seconds, **common)))
        write(report.format_run(runs[-1], naive) + "\n")
        if opts["also_postgres"]:
            runs.append(run_hub(RunConfig(label="PostgreSQL", orders=opts["postgres_orders"] or orders,
                                          database_url=opts["postgres_url"], redis_url=opts["postgres_redis_url"],
                                          steady_rate=steady_rate, steady_seconds=steady_seconds, **common)))
            write(report.format_run(runs[-1], naive) + "\n")
        if opts["cap_check"]:
            # Caps the hub would exceed several times over unpaced, and a run longer than a minute,
            # so that the sandbox's busiest 60-second window shows the cap binding.
            # The ceilings too: learned caps would otherwise rise above the lowered ones.
            caps = {"VTEX_RATE_GET_ORDER": 300, "VTEX_RATE_START_HANDLING": 300, "VTEX_RATE_FEED": 120,
                    "VTEX_RATE_MAX_GET_ORDER": 300, "VTEX_RATE_MAX_START_HANDLING": 300, "VTEX_RATE_MAX_FEED": 120}
            runs.append(run_hub(RunConfig(label="rate caps lowered", orders=min(orders, 400), database_url=opts["database_url"],
                                          redis_url=opts["redis_url"], extra_env=caps, **common)))
            write(report.format_run(runs[-1]) + "\n")
    out["runs"] = runs
    side = report.format_side_by_side([r for r in runs if r["label"] in ("SQLite", "PostgreSQL")], naive)
    if side:
        write(side + "\n")

    write("Targets (50 ms sandbox, 100 ms ERP, this machine); printed, never asserted")
    for run in runs:
        rows = report.targets(run, naive, only_caps=run["label"] == "rate caps lowered")
        if rows:
            write(report.format_targets(rows, f" {run['label']}:"))
    if opts["memory_scan"] and len(runs) >= 2 and all(r.get("memory") for r in runs):
        write(report.format_targets(report.scan_targets(runs[0], runs[-1]), " memory scan:"))
    write(f"\n(benchmark took {time.monotonic() - started:.0f} s)")
    if opts["json"]:
        with open(opts["json"], "w") as fh:
            json.dump(out, fh, indent=2, default=str)
    if any(r.get("error") for r in runs):
        raise BenchmarkError("a run failed: " + "; ".join(r["error"] for r in runs if r.get("error")))


def main(argv=None):
    opts = vars(parser().parse_args(argv))
    try:
        run_benchmark(opts)
    except BenchmarkError as exc:
        print(f"hub_bench: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _machine():
    cores = os.cpu_count()
    return f"{platform.system()} {platform.machine()}, {cores} cores, Python {platform.python_version()}"
