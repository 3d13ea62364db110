"""The printed figures and the targets (PASS/MISS; printed, never asserted)."""

TARGET_SPEEDUP = 10.0
TARGET_CALLS = 2.3
FLOOR_CALLS = 2.2
TARGET_CPU_MS = 5.0
TARGET_MEMORY_MB = 300.0
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
    """[(route, peak per minute, cap)] over the whole run, and whether every route stayed at or under its cap."""
    caps = result.get("caps") or {}
    peaks = dict(result.get("sandbox", {}).get("max_per_minute") or result.get("burst", {}).get("max_per_minute") or {})
    rows = []
    for route, peak in sorted(peaks.items(), key=lambda kv: (ROUTE_ORDER.index(kv[0]) if kv[0] in ROUTE_ORDER else 9, kv[0])):
        cap = caps.get(route, caps.get("*"))
        rows.append((route, peak, cap))
    return rows, all(not cap or peak <= cap for _, peak, cap in rows)


def format_run(result, naive=None):
    lines = []
    title = (f"{result['label']}: {result.get('database', '?')} + {result.get('broker', '?')} broker, "
             f"qcluster with {result['workers']} workers, {result['orders']:,} orders pre-seeded")
    lines.append(title)
    lines.append("-" * len(title))
    if result.get("error"):
        lines.append(f"  ERROR: {result['error']}")
    burst = result.get("burst")
    if burst:
        n = burst["delivered"]
        lines.append(f"  throughput (burst)     {n:,} orders delivered and start-handled in {burst['seconds']:.1f} s = "
                     f"{burst['per_second']:.1f} orders/s  (first delivery {_fmt_s(burst['first_delivery_s'])} after launch)")
        if naive:
            lines.append(f"  vs naive consumer      {burst['per_second'] / naive['per_second']:.1f}x  "
                         f"({naive['per_second']:.2f} orders/s one at a time)")
        per, detail = _calls_line(burst["calls"], n)
        lines.append(f"  VTEX calls per order   {per:.3f}  ({detail})")
        lines.append(f"  hub CPU per order      {burst['cpu_seconds'] * 1000 / max(n, 1):.2f} ms  "
                     f"({burst['cpu_seconds']:.1f} s CPU over the run, start-up included)")
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
        lines.append(f"    of which             waiting in the VTEX feed for the next feed cycle: p50 {_fmt_s(steady['intake_p50'])}, "
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
    db, erp, sandbox = result.get("db"), result.get("erp"), result.get("sandbox")
    if db and erp and sandbox:
        failed = sum(v for k, v in db["syncs"].items() if k != "succeeded")
        lines.append(f"  correctness            ERP: {erp['orders_sent']:,} orders, {erp['unique_keys']:,} idempotency keys, "
                     f"{erp['duplicates']} repeated deliveries; VTEX: {sandbox['start_handling_calls']:,} start-handling calls, "
                     f"{sandbox['start_handling_repeated']} repeated; hub: {db['syncs'].get('succeeded', 0):,} syncs succeeded, "
                     f"{failed} not, {db['uncommitted']} events uncommitted, feed depth {sandbox['feed_depth']}")
    for note in result.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def format_naive(naive):
    return (f"Naive sequential consumer (retrieve 1, get order, POST to the ERP, start-handling, commit): "
            f"{naive['orders']} orders in {naive['seconds']:.1f} s = {naive['per_second']:.2f} orders/s; "
            f"{naive['vtex_calls'] / max(naive['orders'], 1):.2f} VTEX calls per order; "
            f"{naive['cpu_seconds'] * 1000 / max(naive['orders'], 1):.2f} ms CPU per order")


def targets(result, naive=None, scan=None, only_caps=False):
    """[(target, measured, PASS/MISS)] for one run."""
    out = []
    burst = result.get("burst")
    if not burst:
        return out
    if only_caps:
        rows, ok = cap_check(result)
        worst = max(((peak / cap, route, peak, cap) for route, peak, cap in rows if cap), default=None)
        measured = f"highest {worst[1]} {worst[2]}/min of {worst[3]}" if worst else "no capped route called"
        return [("no route of any store above its cap", measured, _mark(ok))]
    n = max(burst["delivered"], 1)
    if naive:
        ratio = burst["per_second"] / naive["per_second"]
        out.append((f">= {TARGET_SPEEDUP:.0f}x the naive consumer's throughput", f"{ratio:.1f}x", _mark(ratio >= TARGET_SPEEDUP)))
    per = burst["vtex_calls"] / n
    out.append((f"<= {TARGET_CALLS} VTEX calls per order (floor {FLOOR_CALLS})", f"{per:.3f}", _mark(per <= TARGET_CALLS)))
    cpu = burst["cpu_seconds"] * 1000 / n
    out.append((f"<= {TARGET_CPU_MS:.0f} ms hub CPU per order", f"{cpu:.2f} ms", _mark(cpu <= TARGET_CPU_MS)))
    memory = result.get("memory")
    if memory:
        pss = memory["peak_pss_sum_mb"]
        out.append((f"peak memory < {TARGET_MEMORY_MB:.0f} MB (summed PSS)", f"{pss:.0f} MB (summed VmHWM {memory['hwm_sum_mb']:.0f} MB)",
                    _mark(pss < TARGET_MEMORY_MB)))
    rows, ok = cap_check(result)
    worst = max(((peak / cap, route, peak, cap) for route, peak, cap in rows if cap), default=None)
    measured = f"highest {worst[1]} {worst[2]}/min of {worst[3]}" if worst else "no capped route called"
    out.append(("no route of any store above its cap", measured, _mark(ok)))
    return out


def scan_targets(small, large):
    a, b = small["memory"]["peak_pss_sum_mb"], large["memory"]["peak_pss_sum_mb"]
    ha, hb = small["memory"]["hwm_sum_mb"], large["memory"]["hwm_sum_mb"]
    growth = (b - a) / a if a else 0.0
    flat = growth <= FLAT_GROWTH and b < TARGET_MEMORY_MB
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
            f"{burst['per_second']:.1f}/s",
            f"{burst['per_second'] / naive['per_second']:.1f}x" if naive else "n/a",
            f"{burst['vtex_calls'] / n:.3f}",
            f"{burst['cpu_seconds'] * 1000 / n:.1f} ms",
            f"{steady['p50']:.1f} / {steady['p95']:.1f} s" if steady.get("p50") is not None else "n/a",
            f"{steady['pipeline_p50']:.2f} / {steady['pipeline_p95']:.2f} s" if steady.get("pipeline_p50") is not None else "n/a",
            f"{memory.get('peak_pss_sum_mb', 0):.0f} MB / {memory.get('hwm_sum_mb', 0):.0f} MB",
            f"{worst[2]} of {worst[3]} ({worst[1]})" if worst else "n/a",
        ]

    labels = ["", "orders (burst)", "throughput", "vs naive", "VTEX calls/order", "hub CPU/order",
              "latency p50 / p95", "inbox->ERP p50 / p95", "memory PSS / VmHWM", "busiest route/min"]
    cols = [col(r) for r in runs]
    width0 = max(len(x) for x in labels)
    widths = [max(len(c[i]) for i in range(len(labels))) for c in cols]
    lines = ["Side by side"]
    for i, label in enumerate(labels):
        lines.append("  " + label.ljust(width0) + "  " + "  ".join(c[i].rjust(w) for c, w in zip(cols, widths)))
    return "\n".join(lines)
