"""A qcluster killed with SIGKILL (its whole process group) mid-intake and mid-dispatch, then restarted."""
import time

import pytest

from tests.faults.harness import Scenario, log, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def in_flight(hub):
    """Adapter calls started in the last 5 s and not finished (a dead worker's attempts stay 'running')."""
    return hub.scalar("SELECT count(*) FROM integration_syncattempt WHERE outcome = 'running' AND started_at > now() - interval '5 seconds'")


def feed_lease(hub):
    return hub.query("SELECT lease_owner, lease_until FROM integration_account WHERE id = %s", (hub.account_pk,))[0]


def test_sigkill_mid_intake_then_mid_dispatch_loses_nothing_and_sends_nothing_twice():
    # The ERP answers after 400 ms and the feed routes are slow, so each kill lands while adapter
    # calls and a feed batch are in flight. Batches of 20 orders on 8 threads (~1.5 s) stay well
    # inside SYNC_CLAIM_TTL, as the timeout chain requires.
    with Scenario("kill-mid-intake-and-dispatch", orders=300, erp_latency_ms=400,
                  hub_env={"DISPATCH_BATCH_SIZE": "20"}) as run:
        hub = run.hub
        run.seed()
        run.sandbox.faults(slow=[{"route": "feed_retrieve", "delay_ms": 300}, {"route": "feed_commit", "delay_ms": 300}])
        [cluster] = run.start_clusters(1)
        hub.kick_feed_cycle()

        # Kill 1: intake part way, adapter calls in flight.
        wait_until(lambda: 60 <= hub.progress()["events"] < 300 and in_flight(hub) > 0, 120, interval=0.2,
                   what="intake part way with adapter calls in flight")
        stored = hub.progress()["events"]
        cluster.kill()
        # Counted after the kill: the attempts the dead cluster left running are exactly the calls
        # that may have reached the ERP unrecorded (counted before it, a lot that started in between,
        # with fifty threads a lot all at once, was missed: 30 repeats against 20 counted, once).
        calls_1 = in_flight(hub)
        killed_1 = time.monotonic()
        log(f"kill 1 (mid-intake): {stored}/300 events stored, {calls_1} adapter calls in flight; {hub.progress()}")
        owner, _ = feed_lease(hub)
        assert owner, "the killed feed cycle's lease is left behind (it must expire, not be released)"
        stale_1 = hub.progress()["claimed"]
        cluster.start()
        run.wait_for_all(240)  # the lease and the claims expire; the schedule resumes intake and dispatch
        recovered_1 = time.monotonic() - killed_1
        log(f"recovered from kill 1 in {recovered_1:.0f}s")
        run.sandbox.faults(slow=None)

        # Kill 2: 200 more orders arrive; kill while their adapter calls are in flight.
        run.order_ids += run.sandbox.create_orders(200)
        run.outcome.orders = len(run.order_ids)
        hub.kick_feed_cycle()
        wait_until(lambda: in_flight(hub) > 0 and hub.progress()["pending"] > 50, 120, interval=0.2,
                   what="dispatch of the new orders with adapter calls in flight")
        cluster.kill()
        calls_2 = in_flight(hub)
        killed_2 = time.monotonic()
        stale_2 = hub.progress()["claimed"]
        log(f"kill 2 (mid-dispatch): {calls_2} adapter calls in flight; {hub.progress()}")
        cluster.start()
        run.wait_for_all(240)
        outcome = run.outcome
        outcome.faults = (f"SIGKILL of the qcluster process group twice, restarted at once: mid-intake ({stored}/300 events "
                          f"stored, {calls_1} adapter calls in flight), then mid-dispatch of 200 new orders ({calls_2} calls in flight)")
        outcome.notes.update(stale_claims_after_kill=[stale_1, stale_2], calls_in_flight=[calls_1, calls_2],
                             recovery_s=[round(recovered_1), None], cluster_starts=cluster.starts)
        outcome = run.finish(recovered_from=killed_2)
        outcome.notes["recovery_s"][1] = outcome.time_to_recover_s
        outcome.save()
        assert not outcome.violations, outcome.violations
        # A repeat can only be a call the ERP answered while its worker died.
        assert outcome.repeats_covered_by_key <= calls_1 + calls_2
