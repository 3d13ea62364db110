"""`python -m hub_bench` (`make bench`): the real pipeline against the sandbox, measured.

Feed intake, routing, dispatch and start-handling run in a real `qcluster` on a fresh database,
over HTTP to a VTEX sandbox and a loopback ERP running in processes of their own; a sequential
consumer gives the baseline. docs/contributors/performance.md says what the figures mean.
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
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
ADAPTERS = ("webhook", "amqp", "sftp")


class BenchmarkError(Exception):
    """A bad option or a failed run: printed as ``hub_bench: error: ...``, exit status 1."""


def parser():
    parser = argparse.ArgumentParser(
        prog="python -m hub_bench",
        description="Benchmark the hub end to end (feed, routing, dispatch, start-handling) against the VTEX sandbox. "
                    "Default: the sequential consumer, one store on SQLite (burst + steady), 4 stores, the rate-cap check.")
    parser.add_argument("--orders", type=int, default=None, help="pre-seeded backlog of the burst (default 2000)")
    parser.add_argument("--sandbox-latency-ms", type=int, default=50)
    parser.add_argument("--erp-latency-ms", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4, help="Q_WORKERS of the hub's qcluster (default 4)")
    parser.add_argument("--naive-orders", type=int, default=None, help="orders through the sequential consumer (default 300)")
    parser.add_argument("--steady-rate", type=float, default=None, help="orders/s of the latency phase (default 10)")
    parser.add_argument("--steady-seconds", type=float, default=None, help="length of the latency phase (default 60)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-steady", action="store_true", help="no latency phase")
    parser.add_argument("--quick", action="store_true",
                        help="small numbers, and only the sequential consumer and the main run unless more is asked (a smoke run)")
    parser.add_argument("--full", action="store_true",
                        help="everything: also PostgreSQL + Redis, 16 stores, the round trip, the amqp and sftp adapters")
    parser.add_argument("--stores", type=int, default=1, help="stores of the main run, orders spread over them (default 1)")
    parser.add_argument("--multi-store", default=None, metavar="N,N",
                        help="extra runs with this many stores, --orders-per-store each (default 4; --full 4,16; --quick none; '' none)")
    parser.add_argument("--orders-per-store", type=int, default=None, help="orders per store of the multi-store runs (default 500)")
    parser.add_argument("--adapter", choices=ADAPTERS, default="webhook",
                        help="the adapter of the main run: webhook (loopback ERP), amqp (RabbitMQ), sftp (a throw-away sshd; root)")
    parser.add_argument("--adapters", default=None, metavar="A,A",
                        help="extra runs through these adapters, --adapter-orders each (default none; --full amqp,sftp)")
    parser.add_argument("--adapter-orders", type=int, default=None, help="orders of each extra adapter run (default 1000)")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP, help="RabbitMQ of the amqp adapter (default " + DEFAULT_AMQP.replace("%", "%%") + ")")
    parser.add_argument("--intake-mode", choices=("feed", "hook"), default="feed",
                        help="the main run's intake: feed (default) or hook (the sandbox pushes to the hub's web server)")
    parser.add_argument("--hook-run", action="store_true",
                        help="an extra run with hook intake (burst and steady phase), graded on p95 <= 3 s (--full: on)")
    parser.add_argument("--round-trip", action="store_true",
                        help="an extra run with the way back: the ERP invoices every order through the hub's ERP API")
    parser.add_argument("--round-trip-orders", type=int, default=None, help="orders of the round trip (default 500)")
    parser.add_argument("--database-url", default="", help="PostgreSQL server for the run (a fresh bench_<n> database is created); default SQLite")
    parser.add_argument("--redis-url", default="", help="Redis broker for the run (with --database-url)")
    parser.add_argument("--also-postgres", action="store_true", help="after the SQLite run, the same run on PostgreSQL with the Redis broker")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help=f"for --also-postgres (default {DEFAULT_POSTGRES})")
    parser.add_argument("--postgres-redis-url", default=DEFAULT_REDIS, help=f"for --also-postgres (default {DEFAULT_REDIS})")
    parser.add_argument("--postgres-orders", type=int, default=None, help="orders of the PostgreSQL run (default: --orders)")
    parser.add_argument("--memory-scan", action="store_true", help="burst at 2,000 and 20,000 orders; print both memory peaks")
    parser.add_argument("--scan-orders", default="2000,20000", metavar="N,N",
                        help="burst sizes of --memory-scan (default 2000,20000; the target is flat up to 100000)")
    cap = parser.add_mutually_exclusive_group()
    cap.add_argument("--cap-check", action="store_true", default=None,
                     help="a burst larger than a minute's (lowered) VTEX rate caps: the busiest 60 s per store and route "
                          "against the cap (default on; off with --quick)")
    cap.add_argument("--no-cap-check", dest="cap_check", action="store_false")
    parser.add_argument("--profile", default="", metavar="DIR",
                        help="py-spy every hub process during each burst: raw stacks and a summary (summary-<run>.txt) into DIR")
    parser.add_argument("--keep", action="store_true", help="keep each run's temporary directory (logs, SQLite file)")
    parser.add_argument("--json", default="", help="also write every figure to this file")
    return parser


# The rate-cap check: caps a minute's worth of which the burst exceeds, so the check can fail.
# The ceilings too: learned caps would otherwise rise above the lowered ones.
CAP_CHECK_CAPS = {"VTEX_RATE_GET_ORDER": 120, "VTEX_RATE_START_HANDLING": 120, "VTEX_RATE_FEED": 60,
                  "VTEX_RATE_MAX_GET_ORDER": 120, "VTEX_RATE_MAX_START_HANDLING": 120, "VTEX_RATE_MAX_FEED": 60}
CAP_CHECK_ORDERS = 200


def _ints(text):
    return [int(x) for x in (text or "").split(",") if x.strip()]


def run_benchmark(opts, stdout=sys.stdout, stderr=sys.stderr):
    from hub_bench import report
    from hub_bench.runner import RunConfig, pyspy_executable, run_hub, run_naive

    def write(text):
        stdout.write(text if text.endswith("\n") else text + "\n")
        stdout.flush()

    quick, full = opts["quick"], opts["full"]
    # `is None`, not `or`: an explicit 0 is refused below instead of meaning "the default".
    orders = opts["orders"] if opts["orders"] is not None else (200 if quick else 2000)
    naive_orders = opts["naive_orders"] if opts["naive_orders"] is not None else (20 if quick else 300)
    steady_rate = opts["steady_rate"] or (5.0 if quick else 10.0)
    steady_seconds = opts["steady_seconds"] if opts["steady_seconds"] is not None else (6.0 if quick else 60.0)
    per_store = opts["orders_per_store"] if opts["orders_per_store"] is not None else (10 if quick else 500)
    adapter_orders = opts["adapter_orders"] if opts["adapter_orders"] is not None else (20 if quick else 1000)
    trip_orders = opts["round_trip_orders"] if opts["round_trip_orders"] is not None else (20 if quick else 500)
    multi = opts["multi_store"] if opts["multi_store"] is not None else ("" if quick else ("4,16" if full else "4"))
    adapters = opts["adapters"] if opts["adapters"] is not None else ("amqp,sftp" if full else "")
    cap_check = opts["cap_check"] if opts["cap_check"] is not None else not quick
    round_trip = opts["round_trip"] or full
    also_postgres = opts["also_postgres"] or (full and not opts["database_url"])
    if opts["skip_steady"]:
        steady_seconds = 0.0
    try:
        stores_list, adapter_list = _ints(multi), [a.strip() for a in adapters.split(",") if a.strip()]
    except ValueError:
        raise BenchmarkError("--multi-store takes store counts, e.g. 4,16") from None
    if orders < 1 or naive_orders < 1 or opts["workers"] < 1 or opts["stores"] < 1 or per_store < 1 or any(n < 1 for n in stores_list):
        raise BenchmarkError("--orders, --naive-orders and --workers must be positive")
    if any(a not in ADAPTERS for a in adapter_list):
        raise BenchmarkError(f"--adapters takes {', '.join(ADAPTERS)}")
    if opts["redis_url"] and not opts["database_url"]:
        raise BenchmarkError("--redis-url goes with --database-url (the Redis broker is for PostgreSQL set-ups)")
    if opts["profile"] and pyspy_executable() is None:
        raise BenchmarkError("--profile needs py-spy: pip install -e '.[bench]' (or pip install py-spy)")

    def log(text):
        stderr.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        stderr.flush()

    common = dict(workers=opts["workers"], sandbox_latency_ms=opts["sandbox_latency_ms"],
                  erp_latency_ms=opts["erp_latency_ms"], keep=opts["keep"], log=log,
                  profile_dir=opts["profile"], amqp_url=opts["amqp_url"])
    where = dict(database_url=opts["database_url"], redis_url=opts["redis_url"])
    started = time.monotonic()
    out = {"machine": _machine(), "runs": [], "naive": None, "load": []}
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out["load"].append(("start", load))
    write(f"VTEX order hub benchmark -- {out['machine']}; load average at start {load}")
    write(f"sandbox latency {opts['sandbox_latency_ms']} ms per VTEX call, ERP latency {opts['erp_latency_ms']} ms per delivery\n")

    naive = None
    if not opts["skip_naive"] and not opts["memory_scan"]:
        naive = run_naive(RunConfig(label="naive", orders=naive_orders, **common), naive_orders)
        out["naive"] = naive
        write(report.format_naive(naive) + "\n")

    runs = []

    def run(cfg, with_naive=False):
        runs.append(run_hub(cfg))
        runs[-1]["load_after"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        write(report.format_run(runs[-1], naive if with_naive else None) + f"\n  load average after the run {runs[-1]['load_after']}\n")

    database = "PostgreSQL" if opts["database_url"] else "SQLite"
    if opts["memory_scan"]:
        sizes = [int(x) for x in opts["scan_orders"].split(",")]
        for size in sizes:
            run(RunConfig(label=f"memory scan {size:,}", orders=size, **where, **common))
    else:
        main_label = database + (f", {opts['stores']} stores" if opts["stores"] > 1 else "") + \
            (f", {opts['adapter']}" if opts["adapter"] != "webhook" else "")
        if opts["intake_mode"] == "hook":
            main_label += ", hook intake"
        run(RunConfig(label=main_label, orders=orders, stores=opts["stores"], adapter=opts["adapter"], intake_mode=opts["intake_mode"],
                      steady_rate=steady_rate, steady_seconds=steady_seconds, **where, **common), with_naive=True)
        if also_postgres:
            run(RunConfig(label="PostgreSQL", orders=opts["postgres_orders"] or orders, stores=opts["stores"],
                          database_url=opts["postgres_url"], redis_url=opts["postgres_redis_url"],
                          steady_rate=steady_rate, steady_seconds=steady_seconds, **common), with_naive=True)
        for stores in stores_list:
            run(RunConfig(label=f"{database}, {stores} stores", orders=stores * per_store, stores=stores, **where, **common))
            if also_postgres:
                run(RunConfig(label=f"PostgreSQL, {stores} stores", orders=stores * per_store, stores=stores,
                              database_url=opts["postgres_url"], redis_url=opts["postgres_redis_url"], **common))
        for adapter in adapter_list:
            run(RunConfig(label=f"{database}, {adapter} adapter", orders=adapter_orders, adapter=adapter, **where, **common))
        if opts["hook_run"] or (full and opts["intake_mode"] != "hook"):
            run(RunConfig(label=f"{database}, hook intake", orders=orders, intake_mode="hook",
                          steady_rate=steady_rate, steady_seconds=steady_seconds, **where, **common))
        if round_trip:
            run(RunConfig(label=f"{database}, round trip", orders=trip_orders, round_trip=True, **where, **common))
        if cap_check:
            # 300 s: at 120 calls a minute the burst needs 100 s of get orders and 100 s of start-handlings,
            # and a lot works its phases one after the other (performance page, "The rate-cap check").
            run(RunConfig(label="rate caps lowered", orders=CAP_CHECK_ORDERS, extra_env=CAP_CHECK_CAPS, timeout=300.0, **where, **common))
    out["runs"] = runs
    side = report.format_side_by_side([r for r in runs if r["label"] in ("SQLite", "PostgreSQL")], naive)
    if side:
        write(side + "\n")

    write(f"Targets ({opts['sandbox_latency_ms']} ms sandbox, {opts['erp_latency_ms']} ms ERP, this machine); "
          "printed, never asserted")
    for result in runs:
        rows = report.targets(result, naive if result.get("stores", 1) == 1 else None,
                              only_caps=result["label"] == "rate caps lowered")
        if rows:
            write(report.format_targets(rows, f" {result['label']}:"))
    if opts["memory_scan"] and len(runs) >= 2 and all(r.get("memory") for r in runs):
        write(report.format_targets(report.scan_targets(runs[0], runs[-1]), " memory scan:"))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out["load"].append(("end", load))
    write(f"\n(benchmark took {time.monotonic() - started:.0f} s; load average at the end {load})")
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
