"""PostgreSQL (a private instance) restarted with `pg_ctl restart -m fast` while a feed cycle and dispatch run."""
import time

import pytest

from tests.faults.harness import Scenario, log, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_postgres_restart_mid_cycle_fails_that_cycle_cleanly_and_loses_nothing():
    # Slow feed retrieves and a slow ERP: the restart lands inside a feed cycle and a dispatch batch.
    with Scenario("postgres-restart", orders=300, private_pg=True, erp_latency_ms=200) as run:
        hub = run.hub
        run.seed()
        run.sandbox.faults(slow=[{"route": "feed_retrieve", "delay_ms": 300}])
        [cluster] = run.start_clusters(1)
        hub.kick_feed_cycle()
        wait_until(lambda: (lambda p: 60 <= p["events"] < 300 and p["delivered"] > 10)(hub.progress()), 120, interval=0.2,
                   what="a feed cycle and dispatch under way")
        before = hub.progress()
        restarted_at = time.monotonic()
        run.pg.restart("fast")
        log(f"PostgreSQL restarted in {time.monotonic() - restarted_at:.1f}s at {before}")
        run.sandbox.faults(slow=None)
        run.wait_for_all(240)
        outcome = run.outcome
        logs = run.cluster_logs().splitlines()
        failed_cycles = [line for line in logs if "feed cycle faultstore: error" in line or "feed cycle failed for store" in line]
        failed_orders = [line for line in logs if "failed unexpectedly" in line]  # one order's batch, caught
        failed_tasks = [line for line in logs if " ERROR django-q Failed '" in line]  # the task failed, logged by the cluster
        outcome.faults = f"pg_ctl restart -m fast of the hub's PostgreSQL with {before['events']}/300 events stored and dispatch running"
        outcome.notes.update(
            at_restart=before, failed_feed_cycles_logged=len(failed_cycles), failed_order_dispatches_logged=len(failed_orders),
            failed_tasks_logged=len(failed_tasks),
            first_cycle_error=failed_cycles[-1].split("error:", 1)[-1].strip()[:200] if failed_cycles else "",
            cluster_starts=cluster.starts, last_cycle_ok=hub.scalar("SELECT last_cycle_ok FROM integration_account WHERE id = %s",
                                                                    (hub.account_pk,)))
        outcome = run.finish(recovered_from=restarted_at)
        assert not outcome.violations, outcome.violations
        # The cycle that met the restart failed and said so; the process did not crash; the next cycle completed.
        assert failed_cycles or failed_orders or failed_tasks, "the interrupted work left no trace of its failure"
        assert cluster.alive() and cluster.starts == 1, "the qcluster crashed"
        assert outcome.notes["last_cycle_ok"] is True
