"""The ERP down for the whole intake and several breaker periods (every call answered 500), then back."""
import time

import pytest

from tests.faults.harness import Scenario, log, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]
DOWN_AFTER_INTAKE_S = 45  # several BREAKER_OPEN_SECONDS periods and dispatcher runs while down


def breaker(hub):
    failures, open_until = hub.query("SELECT breaker_failures, breaker_open_until FROM integration_adapterbinding WHERE id = %s",
                                     (hub.binding_pk,))[0]
    return {"failures": failures, "open": open_until is not None}


def test_erp_down_then_back_every_sync_succeeds_and_the_breaker_spares_the_erp():
    with Scenario("erp-down", orders=200) as run:
        hub = run.hub
        run.seed()
        run.erp.fail(500)
        down_at = time.monotonic()
        [cluster] = run.start_clusters(1)
        hub.kick_feed_cycle()
        wait_until(lambda: hub.progress()["events"] == 200 and breaker(hub)["open"], 120,
                   what="intake done and the breaker open")
        time.sleep(DOWN_AFTER_INTAKE_S)
        calls_while_down = len(run.erp.received(everything=True))
        state = breaker(hub)
        max_attempts = hub.scalar("SELECT coalesce(max(attempts), 0) FROM integration_ordersync")
        gave_up = hub.scalar("SELECT count(*) FROM integration_ordersync WHERE status = 'failed'")
        log(f"ERP down {time.monotonic() - down_at:.0f}s: {calls_while_down} calls reached it, breaker {state}, "
            f"max attempts of a sync {max_attempts}, failed syncs {gave_up}")
        run.erp.recover()
        recovered_at = time.monotonic()
        run.wait_for_all(180)
        outcome = run.outcome
        outcome.faults = (f"ERP answering 500 to every call for {recovered_at - down_at:.0f}s (all of intake, then "
                          f"{DOWN_AFTER_INTAKE_S}s more), then recovered")
        outcome.notes.update(erp_calls_while_down=calls_while_down, breaker_while_down=state,
                             max_attempts_of_a_sync_while_down=max_attempts, down_s=round(recovered_at - down_at))
        outcome = run.finish(recovered_from=recovered_at)
        outcome.notes["breaker_after"] = breaker(hub)
        outcome.save()
        assert not outcome.violations, outcome.violations
        # The breaker held the syncs instead of calling a dead ERP once per sync and retry.
        assert calls_while_down < 200 / 2, f"{calls_while_down} calls reached the ERP while it was down"
        assert outcome.notes["breaker_after"] == {"failures": 0, "open": False}
        assert cluster.starts == 1
