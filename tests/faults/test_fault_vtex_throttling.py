"""VTEX answering 429 (Retry-After: 1) and 503 in bursts on every route while the hub works."""
import time
from collections import Counter

import pytest

from tests.faults.harness import Scenario, log, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]
BURSTS, ON_S, OFF_S = 5, 6, 6
PER_BURST = {"rate_limit": 30, "server_error": 15}


def remaining(entries):
    return sum(e.get("count", 0) for e in entries or [])


def test_vtex_429_and_503_bursts_the_hub_waits_and_finishes():
    # VTEX calls take 20 ms each, so the bursts land while intake and dispatch are under way.
    with Scenario("vtex-429-503", orders=400) as run:
        hub = run.hub
        run.seed()
        run.sandbox.faults(latency_ms=20)
        run.start_clusters(1)
        hub.kick_feed_cycle()
        wait_until(lambda: hub.progress()["events"] >= 30, 90, interval=0.2, what="intake under way")
        injected = Counter()
        for n in range(BURSTS):
            run.sandbox.faults(
                rate_limit=[{"route": "*", "rate": 0.2, "count": PER_BURST["rate_limit"], "retry_after": 1}],
                server_error=[{"route": "*", "rate": 0.1, "count": PER_BURST["server_error"], "status": 503}])
            time.sleep(ON_S)
            snapshot = run.sandbox.get("/_sandbox/faults")
            run.sandbox.faults(rate_limit=None, server_error=None)
            injected["429"] += PER_BURST["rate_limit"] - remaining(snapshot["rate_limit"])
            injected["503"] += PER_BURST["server_error"] - remaining(snapshot["server_error"])
            log(f"burst {n + 1}: {dict(injected)} so far; {hub.progress()}")
            time.sleep(OFF_S)
        last_fault = time.monotonic()
        run.wait_for_all(240)
        outcome = run.outcome
        outcome.faults = (f"{BURSTS} bursts of {ON_S}s ({OFF_S}s apart) of 429 with Retry-After: 1 (20% of calls) and 503 "
                          f"(10%) on every VTEX route: {injected['429']} x 429 and {injected['503']} x 503 answered")
        outcome.notes.update(injected=dict(injected), route_pauses=dict(hub.query(
            "SELECT route, count(*) FROM integration_routepause GROUP BY route")))
        outcome = run.finish(recovered_from=last_fault)
        assert not outcome.violations, outcome.violations
        assert injected["429"] > 0 and injected["503"] > 0, "the bursts hit no call"
