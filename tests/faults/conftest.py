"""Fault scenarios: the hub as real processes (sandbox, loopback ERP, qcluster, PostgreSQL, Redis).

Which lane runs what. The scenarios are marked `faults` (and `slow`); each takes a minute or
two. The normal lanes (`make test`, no -m) must not run them, lane 3 (`-m faults tests/faults`)
must run every one of them, and nothing may be *skipped* in CI. So this hook *deselects* (it
does not skip) every test marked `faults` or `scaleout` unless the run's -m expression names
that marker. Lane 3 names it and gets them all; lanes 1 and 2 report them as "deselected".
The unmarked tests of this folder (regression tests of hub fixes found by the scenarios) run in
every lane.
"""
OPT_IN_MARKERS = ("faults", "scaleout")


def pytest_collection_modifyitems(config, items):
    markexpr = config.getoption("markexpr") or ""
    wanted = [m for m in OPT_IN_MARKERS if m in markexpr]
    keep, drop = [], []
    for item in items:
        opt_in = [m for m in OPT_IN_MARKERS if item.get_closest_marker(m)]
        (drop if opt_in and not set(opt_in) & set(wanted) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep



def pytest_configure(config):
    # A CI `timeout` stops pytest with SIGTERM; turned into KeyboardInterrupt, it unwinds every
    # scenario's `with` block, which stops the processes and removes the private instances.
    markexpr = config.getoption("markexpr") or ""
    if any(m in markexpr for m in OPT_IN_MARKERS):
        import signal

        def interrupt(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, interrupt)
