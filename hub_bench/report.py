"""The printed figures and the targets (PASS/MISS; printed, never asserted)."""

# The targets of issue 15 (docs/contributors/performance.md has the table).
TARGET_ONE_STORE = 75.0      # orders/s, drain rate, one store
TARGET_SPEEDUP = 16.0        # x the sequential consumer (10 per retrieve, keep-alive)
TARGET_FOUR_STORES = 150.0   # orders/s, drain rate, 4 stores
TARGET_CALLS = 2.2           # VTEX calls per order, burst and steady (graded to two decimals)
TARGET_CPU_MS = 5.0          # hub CPU per order
TARGET_P95_S = 10.0          # feed event -> ERP, steady, feed intake
TARGET_HOOK_P95_S = 3.0      # the same with hook intake
TARGET_FIRST_S = 5.0         # first order delivered after the cluster starts
TARGET_MEMORY_MB = 250.0     # summed PSS of the hub's processes, flat with the backlog
FLAT_GROWTH = 0.15  # "flat": the 20,000-order peak within 15 % of the 2,000-order peak
ROUTE_ORDER = ("feed_retrieve", "feed_commit", "get_order", "start_handling")


def _cores():
    import os

    return os.cpu_count()


def _mark(ok):
    return "PASS" if ok else "MISS"


def _fmt_s(value):
    return "n/a" if value is None else f"{value:.2f} s"


def _calls_line(calls, orders):
    parts = [f"{route} {calls[route]}" for route in ROUTE_ORDER if calls.get(route)]
    parts += [f"{route} {n}" for route, n in sorted(calls.items()) if route not in ROUTE_ORDER and n]
    per = sum(calls.values()) / orders if orders else 0.0
    return per, ", ".join(parts)


def cap_check(result):
    """[(route, peak per minute, cap)] over the whole run, and whether every route stayed at or under its cap.

    VTEX's caps are per store and route: the peak is the busiest 60-second window of any one store
    (the sandbox counts per app key), else of the route over all stores."""
    caps = result.get("caps") or {}
    sandbox = result.get("sandbox", {})
    by_store = sandbox.get("max_per_minute_by_store") or {}
    peaks = {}
    if by_store:
        for store_peaks in by_store.values():
            for route, peak in store_peaks.items():
                peaks[route] = max(peaks.get(route, 0), peak)
    else:
        peaks = dict(sandbox.get("max_per_minute") or result.get("burst", {}).get("max_per_minute") or {})
    rows = []
    for route, peak in sorted(peaks.items(), key=lambda kv: (ROUTE_ORDER.index(kv[0]) if kv[0] in ROUTE_ORDER else 9, kv[0])):
        cap = caps.get(route, caps.get("*"))
        rows.append((route, peak, cap))
    return rows, all(not cap or peak <= cap for _, peak, cap in rows)


def drain_rate(burst):
    """Orders/s from the first delivery to the last order delivered and start-handled (else from launch)."""
    return burst.get("drain_per_second") or burst["per_second"]


def format_run(result, naive=None):
    lines = []
    stores = result.get("stores", 1)
    title = (f"{result['label']}: {result.get('database', '?')} + {result.get('broker', '?')} broker, "
             f"qcluster with {result['workers']} workers, {result['orders']:,} orders pre-seeded"
             f"{f' over {stores} stores' if stores > 1 else ''}, {result.get('adapter', 'webhook')} adapter"
             f"{', with the way back (invoice + tracking through the ERP API)' if result.get('round_trip') else ''}")
    lines.append(title)
    lines.append("-" * len(title))
    if result.get("error"):
        lines.append(f"  ERROR: {result['error']}")
    burst = result.get("burst")
    if burst:
        n = burst["delivered"]
        what = "delivered, start-handled, invoiced and tracked" if result.get("round_trip") else "delivered and start-handled"
        lines.append(f"  throughput (burst)     {n:,} orders {what} in {burst['seconds']:.1f} s from launch = "
                     f"{burst['per_second']:.1f} orders/s from launch")
        drain = burst.get("drain_per_second")
        lines.append(f"  drain rate             {drain:.1f} orders/s from the first delivery to the last "
                     f"({burst['drain_seconds']:.1f} s)" if drain else "  drain rate             n/a (the burst did not finish)")
        lines.append(f"  first order delivered  {_fmt_s(burst['first_delivery_s'])} after the cluster was launched "
                     f"(nothing queued before: the schedules as they run)")
        if naive:
            lines.append(f"  vs naive consumer      {drain_rate(burst) / naive['per_second']:.1f}x drain rate  "
                         f"({naive['per_second']:.2f} orders/s, sequential, 10 per retrieve)")
        per, detail = _calls_line(burst["calls"], n)
        lines.append(f"  VTEX calls per order   {per:.3f}  ({detail})")
        web = " and its web server (the ERP API)" if result.get("round_trip") else ""
        lines.append(f"  hub CPU per order      {burst['cpu_seconds'] * 1000 / max(n, 1):.2f} ms  "
                     f"({burst['cpu_seconds']:.1f} s CPU of the qcluster{web} over the run, start-up included)"
                     + (f"; {burst['drain_cpu_ms']:.2f} ms an order during the drain" if burst.get("drain_cpu_ms") else ""))
        if result.get("round_trip"):
            back = sum(v for k, v in burst["calls"].items() if k.startswith("invoice"))
            lines.append(f"  round trip             {burst.get('invoiced', 0):,} orders invoiced and {burst.get('tracked', 0):,} "
                         f"tracked in VTEX; the way back made {back / max(n, 1):.2f} VTEX calls per order"
                         f"{'; ERP API answers retried: ' + str(burst['invoice_problems']) if burst.get('invoice_problems') else ''}")
        if "machine_busy" in burst:
            db_cpu = burst.get("database_servers_cpu_seconds", 0.0)
            other = max(0.0, burst.get("machine_busy_cpu_seconds", 0.0) - burst["cpu_seconds"] - burst["servers_cpu_seconds"] - db_cpu)
            lines.append(f"  machine                the {_cores()} cores were {burst['machine_busy'] * 100:.0f}% busy during the burst: "
                         f"hub {burst['cpu_seconds']:.1f} s, sandbox + ERP {burst['servers_cpu_seconds']:.1f} s, "
                         f"PostgreSQL + Redis servers {db_cpu:.1f} s, other processes on the machine {other:.1f} s CPU")
    steady = result.get("steady")
    if steady:
        lines.append(f"  latency (steady)       p50 {_fmt_s(steady['p50'])}, p95 {_fmt_s(steady['p95'])}, max {_fmt_s(steady['max'])}  "
                     f"({steady['delivered']} orders at {steady['rate']:g}/s; feed event -> ERP receipt)")
        wait = ("VTEX's hook push to the hub's inbox" if result.get("intake_mode") == "hook"
                else "waiting in the VTEX feed for the next feed cycle")
        lines.append(f"    of which             {wait}: p50 {_fmt_s(steady['intake_p50'])}, "
                     f"p95 {_fmt_s(steady['intake_p95'])}")
        lines.append(f"                         inbox -> ERP (routing, dispatch, get order, delivery): p50 "
                     f"{_fmt_s(steady['pipeline_p50'])}, p95 {_fmt_s(steady['pipeline_p95'])}")
        per, detail = _calls_line(steady["calls"], steady["delivered"])
        lines.append(f"    VTEX calls per order {per:.3f}  ({detail})")
        lines.append(f"    hub CPU per order    {steady['cpu_seconds'] * 1000 / max(steady['delivered'], 1):.2f} ms (steady state)")
    memory = result.get("memory")
    if memory:
        lines.append(f"  peak memory            {memory['hwm_sum_mb']:.0f} MB summed VmHWM over {memory['processes_seen']} processes; "
                     f"peak summed PSS {memory['peak_pss_sum_mb']:.0f} MB (RSS {memory['peak_rss_sum_mb']:.0f} MB)")
    rows, _ = cap_check(result)
    if rows:
        per_second = result.get("sandbox", {}).get("max_per_second", {})
        text = "; ".join(f"{route} {peak}/min{f' (cap {cap})' if cap else ''}, {per_second.get(route, 0)}/s" for route, peak, cap in rows)
        lines.append(f"  peak rate per route    {text}")
    db = result.get("db")
    if db and db.get("bytes") and db.get("orders"):
        lines.append(f"  database               {db['bytes'] / 1e6:.1f} MB for {db['orders']:,} orders = "
                     f"{db['bytes'] / db['orders'] / 1024:.1f} KB an order (growth over the migrated database; before retention prunes anything)")
    if result.get("profile"):
        top = ", ".join(f"{area} {share:g} %" for share, area in result["profile"]["top"][:6])
        lines.append(f"  profile (py-spy)       {top}; full summary {result['profile']['summary']}")
    db, erp, sandbox = result.get("db"), result.get("erp"), result.get("sandbox")
    if db and erp and sandbox:
        failed = sum(v for k, v in db["syncs"].items() if k != "succeeded")
        lines.append(f"  correctness            ERP: {erp['orders_sent']:,} orders, {erp['unique_keys']:,} idempotency keys, "
                     f"{erp['duplicates']} repeated deliveries; VTEX: {sandbox['start_handling_calls']:,} start-handling calls, "
                     f"{sandbox['start_handling_repeated']} repeated; hub: {db['syncs'].get('succeeded', 0):,} syncs succeeded, "
                     f"{failed} not, {db['uncommitted']} events uncommitted, feed depth {sandbox['feed_depth']}"
                     f"{' (hook intake: the feed is not read)' if result.get('intake_mode') == 'hook' else ''}")
    for note in result.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def format_naive(naive):
    return (f"Sequential consumer (retrieve 10, then for each: get order, POST to the ERP, start-handling; commit the lot; keep-alive): "
            f"{naive['orders']} orders in {naive['seconds']:.1f} s = {naive['per_second']:.2f} orders/s; "
            f"{naive['vtex_calls'] / max(naive['orders'], 1):.2f} VTEX calls per order; "
            f"{naive['cpu_seconds'] * 1000 / max(naive['orders'], 1):.2f} ms CPU per order")


def _calls_ok(per):
    return round(per, 2) <= TARGET_CALLS


def targets(result, naive=None, scan=None, only_caps=False):
    """[(target, measured, PASS/MISS/INFO)] for one run."""
    out = []
    burst = result.get("burst")
    if not burst:
        return out
    rows, ok = cap_check(result)
    worst = max(((peak / cap, route, peak, cap) for route, peak, cap in rows if cap), default=None)
    cap_measured = f"busiest 60 s of one store: {worst[1]} {worst[2]} calls of {worst[3]}" if worst else "no capped route called"
    if only_caps:
        # It can fail only if some capped route was called more often than its cap allows in a minute.
        over = any(burst["calls"].get(route, 0) > cap for route, _, cap in rows if cap)
        label = "no route of any store above its cap (a burst larger than a minute's cap)"
        note = "" if over else " (the burst did not exceed a minute's cap: the check could not fail)"
        return [(label, cap_measured + note, _mark(ok) if over else "INFO")]
    n = max(burst["delivered"], 1)
    stores = result.get("stores", 1)
    drain = drain_rate(burst)
    if result.get("round_trip"):
        per = burst["vtex_calls"] / n
        out.append(("round trip: VTEX calls per order (out + invoice + tracking)", f"{per:.3f}", "INFO"))
        out.append(("round trip: hub CPU per order (qcluster + web server)", f"{burst['cpu_seconds'] * 1000 / n:.2f} ms", "INFO"))
        return out
    if result.get("adapter", "webhook") != "webhook":
        out.append((f"{result['adapter']} adapter: drain rate", f"{drain:.1f} orders/s", "INFO"))
        out.append((f"{result['adapter']} adapter: hub CPU per order", f"{burst['cpu_seconds'] * 1000 / n:.2f} ms"
                    + (f" ({burst['drain_cpu_ms']:.2f} ms during the drain)" if burst.get("drain_cpu_ms") else ""), "INFO"))
        return out
    hook = result.get("intake_mode") == "hook"
    if hook:
        out.append(("hook intake: drain rate (reported)", f"{drain:.1f} orders/s ({burst['per_second']:.1f} from launch)", "INFO"))
    elif stores == 1:
        out.append((f">= {TARGET_ONE_STORE:.0f} orders/s one store (drain rate)", f"{drain:.1f} orders/s "
                    f"({burst['per_second']:.1f} from launch)", _mark(drain >= TARGET_ONE_STORE)))
    elif stores == 4:
        out.append((f">= {TARGET_FOUR_STORES:.0f} orders/s 4 stores (drain rate)", f"{drain:.1f} orders/s "
                    f"({burst['per_second']:.1f} from launch)", _mark(drain >= TARGET_FOUR_STORES)))
    else:
        out.append((f"{stores} stores (drain rate; reported)", f"{drain:.1f} orders/s ({burst['per_second']:.1f} from launch)", "INFO"))
    if naive and stores == 1 and not hook:
        ratio = drain / naive["per_second"]
        out.append((f">= {TARGET_SPEEDUP:.0f}x the sequential consumer", f"{ratio:.1f}x ({naive['per_second']:.2f} orders/s)",
                    _mark(ratio >= TARGET_SPEEDUP)))
    cpu = burst["cpu_seconds"] * 1000 / n
    out.append((f"<= {TARGET_CPU_MS:.0f} ms hub CPU per order", f"{cpu:.2f} ms", _mark(cpu <= TARGET_CPU_MS)))
    per = burst["vtex_calls"] / n
    out.append((f"<= {TARGET_CALLS} VTEX calls per order, burst", f"{per:.3f}", _mark(_calls_ok(per))))
    steady = result.get("steady")
    if steady and steady.get("delivered"):
        per = steady["vtex_calls"] / steady["delivered"]
        out.append((f"<= {TARGET_CALLS} VTEX calls per order, steady", f"{per:.3f}", _mark(_calls_ok(per))))
        target = TARGET_HOOK_P95_S if hook else TARGET_P95_S
        p95 = steady.get("p95")
        out.append((f"feed event -> ERP p95 <= {target:g} s{' (hook intake)' if hook else ''}", _fmt_s(p95),
                    _mark(p95 is not None and p95 <= target)))
    first = burst.get("first_delivery_s")
    out.append((f"first order delivered <= {TARGET_FIRST_S:g} s after the cluster starts", _fmt_s(first),
                _mark(first is not None and first <= TARGET_FIRST_S)))
    memory = result.get("memory")
    if memory and not hook:  # a hook run's figure includes its web server
        pss = memory["peak_pss_sum_mb"]
        out.append((f"memory <= {TARGET_MEMORY_MB:.0f} MB (summed PSS; flat: --memory-scan)",
                    f"{pss:.0f} MB (summed VmHWM {memory['hwm_sum_mb']:.0f} MB)", _mark(pss <= TARGET_MEMORY_MB)))
    db = result.get("db") or {}
    if db.get("bytes") and db.get("orders"):
        out.append(("database bytes per order (documented, with retention)", f"{db['bytes'] / db['orders'] / 1024:.1f} KB", "INFO"))
    out.append(("no route of any store above its cap (default caps)", cap_measured, _mark(ok)))
    return out


def scan_targets(small, large):
    a, b = small["memory"]["peak_pss_sum_mb"], large["memory"]["peak_pss_sum_mb"]
    ha, hb = small["memory"]["hwm_sum_mb"], large["memory"]["hwm_sum_mb"]
    growth = (b - a) / a if a else 0.0
    flat = growth <= FLAT_GROWTH and b <= TARGET_MEMORY_MB
    return [(f"peak memory flat from {small['orders']:,} to {large['orders']:,} orders, under {TARGET_MEMORY_MB:.0f} MB",
             f"PSS {a:.0f} -> {b:.0f} MB ({growth * 100:+.0f}%); VmHWM {ha:.0f} -> {hb:.0f} MB", _mark(flat))]


def format_targets(rows, heading):
    if not rows:
        return ""
    width = max(len(r[0]) for r in rows)
    lines = [heading]
    for target, measured, mark in rows:
        lines.append(f"  [{mark}] {target.ljust(width)}  {measured}")
    return "\n".join(lines)


def format_side_by_side(runs, naive=None):
    """The runs next to each other (SQLite and PostgreSQL + Redis, typically)."""
    runs = [r for r in runs if r.get("burst")]
    if len(runs) < 2:
        return ""

    def col(run):
        burst, steady, memory = run["burst"], run.get("steady") or {}, run.get("memory") or {}
        n = max(burst["delivered"], 1)
        rows, _ = cap_check(run)
        worst = max(((peak / cap, route, peak, cap) for route, peak, cap in rows if cap), default=None)
        return [
            f"{run.get('database', '?')} + {run.get('broker', '?')}",
            f"{burst['delivered']:,}",
            f"{drain_rate(burst):.1f}/s",
            f"{burst['per_second']:.1f}/s",
            f"{drain_rate(burst) / naive['per_second']:.1f}x" if naive else "n/a",
            f"{burst['vtex_calls'] / n:.3f}",
            f"{burst['cpu_seconds'] * 1000 / n:.1f} ms",
            f"{steady['p50']:.1f} / {steady['p95']:.1f} s" if steady.get("p50") is not None else "n/a",
            f"{steady['pipeline_p50']:.2f} / {steady['pipeline_p95']:.2f} s" if steady.get("pipeline_p50") is not None else "n/a",
            f"{memory.get('peak_pss_sum_mb', 0):.0f} MB / {memory.get('hwm_sum_mb', 0):.0f} MB",
            f"{worst[2]} of {worst[3]} ({worst[1]})" if worst else "n/a",
        ]

    labels = ["", "orders (burst)", "drain rate", "rate from launch", "vs sequential", "VTEX calls/order", "hub CPU/order",
              "latency p50 / p95", "inbox->ERP p50 / p95", "memory PSS / VmHWM", "busiest route/min"]
    cols = [col(r) for r in runs]
    width0 = max(len(x) for x in labels)
    widths = [max(len(c[i]) for i in range(len(labels))) for c in cols]
    lines = ["Side by side"]
    for i, label in enumerate(labels):
        lines.append("  " + label.ljust(width0) + "  " + "  ".join(c[i].rjust(w) for c, w in zip(cols, widths)))
    return "\n".join(lines)
