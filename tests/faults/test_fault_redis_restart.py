"""Redis (a private instance, no persistence) restarted mid-intake: the broker's queue and the cache are gone.

django-q2's Redis broker never re-delivers a task it lost, and an enqueue while Redis is down
fails. The hub's tasks carry no work (only a store id): what is due is in the database, and any
later dispatch task, or the scheduled dispatcher (`dispatch_all_due`, every minute), takes it from
there. Intake itself must go on while Redis is down (it stores in PostgreSQL and commits to VTEX;
the broker and the cache are only hints).
"""
import time

import pytest

from tests.faults.harness import Scenario, log, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]
DOWN_S = 4


def queued_tasks(run):
    import redis

    return redis.Redis.from_url(run.redis.url, socket_timeout=2).llen("django_q:vtexhub:q")


def test_redis_restart_mid_intake_loses_no_order_and_intake_goes_on():
    # Slow feed retrieves: intake runs for ~15 s, so Redis is down while batches are stored.
    with Scenario("redis-restart", orders=300, erp_latency_ms=200) as run:
        hub = run.hub
        run.seed()
        run.sandbox.faults(slow=[{"route": "feed_retrieve", "delay_ms": 400}])
        [cluster] = run.start_clusters(1)
        hub.kick_feed_cycle()
        wait_until(lambda: 60 <= hub.progress()["events"] < 200, 120, interval=0.2, what="intake under way")
        before = hub.progress()
        lost = queued_tasks(run)
        restarted_at = time.monotonic()
        restart_db_time = hub.scalar("SELECT now()")
        run.redis.restart(down_seconds=DOWN_S)
        log(f"Redis restarted (down {DOWN_S} s) at {before}: {lost} queued tasks lost with it")
        run.sandbox.faults(slow=None)
        run.wait_for_all(240)
        outcome = run.outcome
        scheduled_runs = hub.scalar("SELECT count(*) FROM django_q_task WHERE func = 'integration.tasks.dispatch_all_due'"
                                    " AND success AND started > %s", (restart_db_time,))
        logs = run.cluster_logs()
        not_enqueued = logs.count("could not enqueue")
        failed_cycles = logs.count("feed cycle faultstore: error")
        outcome.faults = (f"redis-server killed and restarted empty (down {DOWN_S} s) mid-intake ({before['events']}/300 events "
                          f"stored): {lost} queued tasks lost, {not_enqueued} enqueues failed while it was down")
        outcome.notes.update(at_restart=before, queued_tasks_lost=lost, enqueues_failed=not_enqueued,
                             failed_feed_cycles=failed_cycles, dispatch_all_due_runs_after_restart=scheduled_runs,
                             pusher_reincarnated=logs.count("reincarnated pusher"), cluster_starts=cluster.starts)
        outcome = run.finish(recovered_from=restarted_at)
        assert not outcome.violations, outcome.violations
        assert cluster.alive() and cluster.starts == 1, "the qcluster crashed"
        assert not_enqueued > 0, "Redis came back before intake enqueued anything: the scenario proved nothing"
        assert failed_cycles == 0, "a feed cycle failed because Redis was down (intake must not need the broker)"
