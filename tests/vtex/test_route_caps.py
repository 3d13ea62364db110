"""Rate caps that learn (integration.pipeline.route_caps), with VTEX mocked over HTTP: a 429 with
Retry-After halves the store's route cap and pauses the route; answers without a 429 raise it; a
pinned cap never moves; the learned cap is a row every worker reads."""
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from integration.models import RouteCap, RoutePause
from integration.pipeline import route_caps
from integration.pipeline.vtex_access import client_for
from integration.vtex import errors
from tests.shared_fixtures import subprocess_database_url

BASE = "https://teststore.vtexcommercestable.com.br"
ORDER = f"{BASE}/api/oms/pvt/orders/1-01"


@pytest.fixture
def learning(settings, tmp_path):
    settings.VTEX_RATE_LIMITS = {"get_order": 600, "*": 0}
    settings.VTEX_RATE_CEILINGS = {"get_order": 1200, "*": 0}
    settings.VTEX_RATE_LEARN = True
    settings.VTEX_RATE_RAISE_PERCENT = 10
    settings.VTEX_RATE_RAISE_SECONDS = 1
    settings.VTEX_RATE_FAST_RAISE_PERCENT = 50
    settings.VTEX_RATE_FAST_RAISE_SECONDS = 1
    settings.VAR_DIR = tmp_path  # a schedule of this test's own (in Redis, when set, the store's id is new)


def row(account):
    return RouteCap.objects.get(account=account, route="get_order")


def window_opened_ago(account, seconds):
    """As if the route's learning window had opened `seconds` ago."""
    RouteCap.objects.filter(account=account, route="get_order").update(window_started_at=timezone.now() - timedelta(seconds=seconds))


def test_the_first_call_starts_at_the_configured_cap(account, vtex, learning):
    vtex.get(ORDER, json={"orderId": "1-01"})
    client_for(account).get_order("1-01")
    cap = row(account)
    assert (cap.learned_cap, cap.pinned_cap, cap.cap_in_force) == (600, None, 600)
    assert route_caps.cap(account.pk, "get_order") == 600


def test_a_429_with_retry_after_halves_the_cap_and_pauses_the_route(account, vtex, learning):
    vtex.get(ORDER, status=429, headers={"Retry-After": "30"})
    with pytest.raises(errors.RateLimited) as info:
        client_for(account).get_order("1-01")
    assert info.value.retry_after == 30
    cap = row(account)
    assert cap.learned_cap == 300
    assert "429" in cap.change_reason and "Retry-After 30" in cap.change_reason
    assert cap.changed_at is not None and cap.cut_at is not None
    assert route_caps.cap(account.pk, "get_order") == 300
    until = RoutePause.active_until(account.pk, "get_order")
    assert 20 < (until - timezone.now()).total_seconds() <= 31
    # Every worker (a new client) waits out the pause without calling VTEX.
    with pytest.raises(errors.RoutePaused):
        client_for(account).get_order("1-01")
    assert len(vtex.calls) == 1


def test_429s_answering_calls_already_sent_halve_once(account, vtex, learning):
    vtex.get(ORDER, status=429, headers={"Retry-After": "30"})
    for _ in range(3):  # three calls that were on their way when the first 429 came
        RoutePause.objects.all().delete()
        with pytest.raises(errors.RateLimited):
            client_for(account).get_order("1-01")
    assert row(account).learned_cap == 300


def test_a_429_after_the_pause_halves_again_but_never_below_a_tenth(account, vtex, learning):
    vtex.get(ORDER, status=429, headers={"Retry-After": "1"})
    for expected in (300, 150, 75, 60, 60):
        RoutePause.objects.all().delete()
        RouteCap.objects.filter(account=account).update(cut_at=timezone.now() - timedelta(seconds=10))
        with pytest.raises(errors.RateLimited):
            client_for(account).get_order("1-01")
        assert row(account).learned_cap == expected


def test_answers_without_429_raise_the_cap_while_it_is_used(account, vtex, learning, settings):
    settings.VTEX_RATE_FAST_RAISE_PERCENT = 0  # the additive law alone (the fast one: the tests below)
    vtex.get(ORDER, json={"orderId": "1-01"})
    client = client_for(account)
    client.get_order("1-01")
    # A window with a few answers (far below half the cap) closes without a raise.
    window_opened_ago(account, 1)
    for _ in range(3):
        client.get_order("1-01")
    assert route_caps.sync(account.pk, "get_order") == 600
    assert row(account).learned_cap == 600
    # A window in which the route used its cap (the limiter paces at ~96 % of it; a raise needs
    # half) raises it by 10 % of the starting cap.
    window_opened_ago(account, 1)
    for _ in range(30):
        client.get_order("1-01")
    assert route_caps.sync(account.pk, "get_order") == 660
    cap = row(account)
    assert cap.learned_cap == 660 and cap.change_reason.startswith("raised 600 → 660/min")


def test_a_saturated_route_grows_by_half_of_its_cap(account, vtex, learning):
    """30 calls at 600 a minute: all but the first second's burst wait for their slot, so the cap
    set the pace. The window raises the cap by half of itself, not by a tenth of the start."""
    vtex.get(ORDER, json={"orderId": "1-01"})
    client = client_for(account)
    client.get_order("1-01")
    window_opened_ago(account, 1)
    for _ in range(30):
        client.get_order("1-01")
    assert route_caps.sync(account.pk, "get_order") == 900
    assert row(account).change_reason.startswith("raised 600 → 900/min: calls queued for the cap")
    window_opened_ago(account, 1)
    for _ in range(30):
        client.get_order("1-01")
    assert route_caps.sync(account.pk, "get_order") == 1200  # 1,350, held at the ceiling


def test_a_backlog_after_a_quiet_spell_grows_fast(account, vtex, learning):
    """The window opened 10 s ago and the route was quiet since: averaged over it, 15 calls are a
    low use (half the cap over 10 s is 50). But a third of them waited for their slot: the cap sets
    the pace now, and the fast raise follows (with dispatch lots, a store's start-handling stayed
    at its starting cap through a whole 4-store benchmark burst before this)."""
    vtex.get(ORDER, json={"orderId": "1-01"})
    client = client_for(account)
    client.get_order("1-01")
    window_opened_ago(account, 10)
    for _ in range(14):  # with the first: 15 calls, the second's burst of 10 and 5 that waited
        client.get_order("1-01")
    assert route_caps.sync(account.pk, "get_order") == 900
    assert row(account).change_reason.startswith("raised 600 → 900/min: calls queued for the cap")


def test_a_saturated_count_too_small_to_show_a_second_at_the_cap_leaves_the_window_open(account, vtex, learning, settings):
    """Other workers' calls booked the route ahead, so this process's three calls waited: saturated,
    but three answers are not a second at 600 a minute (10), and the other workers' answers reach
    the row only with their own syncs. The window stays open and counts on; the answers that follow
    close it with the fast raise. (Closed at once, it began again empty, and a store's
    start-handling waited a whole window more for its raise.)"""
    from integration import ratelimit

    settings.VTEX_RATE_RAISE_SECONDS = 15  # the slow law's window (its default) is not over either
    vtex.get(ORDER, json={"orderId": "1-01"})
    client = client_for(account)
    route_caps.cap(account.pk, "get_order")  # the row, with its window
    window_opened_ago(account, 2)
    opened = row(account).window_started_at
    interval, _ = ratelimit.spacing(600)
    _, reserve = ratelimit._home()
    reserve(account.pk, "get_order", interval, 12)  # another worker's lot took the next 12 slots
    for _ in range(3):
        client.get_order("1-01")
    assert route_caps.sync(account.pk, "get_order") == 600
    cap = row(account)
    assert cap.window_started_at == opened and cap.window_calls == 3
    for _ in range(8):  # queued behind the others' slots too: with the first three, 11 answers
        client.get_order("1-01")
    assert route_caps.sync(account.pk, "get_order") == 900
    assert row(account).change_reason.startswith("raised 600 → 900/min: calls queued for the cap, 11 answers without a 429 in ")


def test_a_route_under_its_cap_grows_only_additively(account, vtex, learning):
    """Calls that never wait (within the first second's burst) used half the cap, but did not
    show that the cap binds: the slow, additive raise."""
    vtex.get(ORDER, json={"orderId": "1-01"})
    client = client_for(account)
    client.get_order("1-01")
    window_opened_ago(account, 1)
    for _ in range(8):  # with the first: 9 calls, under the burst of 10
        client.get_order("1-01")
    assert route_caps.sync(account.pk, "get_order") == 660


def test_after_a_429_a_saturated_route_grows_only_additively(account, vtex, learning):
    vtex.get(ORDER, status=429, headers={"Retry-After": "1"})
    with pytest.raises(errors.RateLimited):
        client_for(account).get_order("1-01")
    assert row(account).learned_cap == 300
    RoutePause.objects.all().delete()
    vtex.replace("GET", ORDER, json={"orderId": "1-01"})
    client = client_for(account)
    window_opened_ago(account, 1)
    for _ in range(20):  # at 300 a minute (burst 5), nearly all of them wait
        client.get_order("1-01")
    assert route_caps.sync(account.pk, "get_order") == 360  # + 10 % of the starting 600, not x 1.5
    # Once the 429 is FAST_RAISE_AFTER_CUT old, a saturated route grows fast again.
    RouteCap.objects.filter(account=account).update(cut_at=timezone.now() - timedelta(seconds=route_caps.FAST_RAISE_AFTER_CUT + 1))
    window_opened_ago(account, 1)
    for _ in range(20):
        client.get_order("1-01")
    assert route_caps.sync(account.pk, "get_order") == 540


def test_the_cap_never_passes_its_ceiling(account, vtex, learning, settings):
    settings.VTEX_RATE_CEILINGS = {"get_order": 620, "*": 0}
    vtex.get(ORDER, json={"orderId": "1-01"})
    client = client_for(account)
    client.get_order("1-01")
    window_opened_ago(account, 1)
    for _ in range(30):
        client.get_order("1-01")
    assert route_caps.sync(account.pk, "get_order") == 620


def test_a_pinned_cap_is_used_and_never_learned(account, vtex, learning):
    vtex.get(ORDER, json={"orderId": "1-01"})
    client = client_for(account)
    client.get_order("1-01")
    RouteCap.objects.filter(account=account).update(pinned_cap=100)
    window_opened_ago(account, 1)
    for _ in range(20):
        client.get_order("1-01")
    assert route_caps.sync(account.pk, "get_order") == 100
    vtex.replace("GET", ORDER, status=429, headers={"Retry-After": "5"})
    with pytest.raises(errors.RateLimited):
        client.get_order("1-01")
    cap = row(account)
    assert (cap.pinned_cap, cap.learned_cap, cap.cap_in_force) == (100, 600, 100)
    assert route_caps.cap(account.pk, "get_order") == 100
    assert RoutePause.active_until(account.pk, "get_order") is not None  # the 429 still pauses the route


def test_the_learned_cap_is_kept_and_shared_by_every_worker(account, vtex, learning):
    vtex.get(ORDER, json={"orderId": "1-01"})
    worker_a, worker_b = client_for(account), client_for(account)
    worker_b.get_order("1-01")
    assert route_caps.cap(account.pk, "get_order") == 600
    vtex.replace("GET", ORDER, status=429, headers={"Retry-After": "1"})
    with pytest.raises(errors.RateLimited):
        worker_a.get_order("1-01")
    # A process that starts afresh (a restart, another worker process) reads the learned cap from
    # its row, and a process holding an older copy reads it again at its next refresh.
    route_caps.forget()
    assert route_caps.cap(account.pk, "get_order") == 300
    assert route_caps.sync(account.pk, "get_order") == 300
    assert RouteCap.objects.filter(account=account).count() == 1


_OTHER_WORKER = """
import sys
import django
django.setup()
from integration.pipeline import route_caps
print(route_caps.cap(int(sys.argv[1]), "get_order"))
route_caps.rate_limited(int(sys.argv[1]), "get_order", 1)
print(route_caps.cap(int(sys.argv[1]), "get_order"))
"""


@pytest.mark.slow
def test_a_cap_learned_by_another_process_is_read_here(transactional_db, account, learning):
    """Another worker process (its own Python, the same database) sees this one's cap and halves
    it on a 429; this process reads the halved cap at its next refresh."""
    assert route_caps.cap(account.pk, "get_order") == 600
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PYTEST_CURRENT_TEST")}
    env.update(DATABASE_URL=subprocess_database_url(), DJANGO_SETTINGS_MODULE="integration.settings", HUB_ENV_FILE="", HUB_TESTING="1",
               VTEX_RATE_GET_ORDER="600", VTEX_RATE_MAX_GET_ORDER="1200", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    done = subprocess.run([sys.executable, "-c", _OTHER_WORKER, str(account.pk)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line for line in done.stdout.splitlines() if line.isdigit()] == ["600", "300"]  # (log lines go to stdout too)
    assert route_caps.cap(account.pk, "get_order") == 600  # this process's copy, until its refresh
    assert route_caps.sync(account.pk, "get_order") == 300


def test_learning_off_keeps_the_configured_cap(account, vtex, learning, settings):
    settings.VTEX_RATE_LEARN = False
    vtex.get(ORDER, status=429, headers={"Retry-After": "1"})
    with pytest.raises(errors.RateLimited):
        client_for(account).get_order("1-01")
    assert route_caps.cap(account.pk, "get_order") == 600
    assert route_caps.highest_caps()["get_order"] == 600


def test_the_highest_caps_are_the_ceilings_when_learning(learning):
    assert route_caps.highest_caps() == {"get_order": 1200, "*": 0}


# --- the store's page ----------------------------------------------------------------------------------
def test_the_store_page_shows_each_routes_cap_and_lets_an_operator_pin_one(admin_client, account, vtex, learning):
    from django.urls import reverse

    from tests.admin.test_admin_stores import change_form_data

    vtex.get(ORDER, status=429, headers={"Retry-After": "30"})
    with pytest.raises(errors.RateLimited):
        client_for(account).get_order("1-01")
    url = reverse("admin:integration_account_change", args=[account.pk])
    page = admin_client.get(url).content.decode()
    assert "VTEX rate caps" in page and "get_order" in page
    assert "halved 600 → 300/min: 429 from VTEX (Retry-After 30 s)" in page
    assert "(starts at 600, at most 1,200)" in page
    # A worker halves the cap again while the page is open; pinning saves only the pin.
    data = change_form_data(admin_client, account)
    [key] = [k for k in data if k.startswith("route_caps-") and k.endswith("-id")]
    data[key.replace("-id", "-pinned_cap")] = "250"
    RouteCap.objects.filter(account=account).update(learned_cap=150)
    assert admin_client.post(url, data).status_code == 302
    cap = row(account)
    assert (cap.pinned_cap, cap.learned_cap) == (250, 150)
    route_caps.forget()
    assert route_caps.cap(account.pk, "get_order") == 250
    assert "<strong>250</strong> (pinned)" in admin_client.get(url).content.decode()


def test_a_new_store_form_has_no_rate_caps(admin_client, learning):
    from django.urls import reverse

    page = admin_client.get(reverse("admin:integration_account_add")).content.decode()
    assert "route_caps-TOTAL_FORMS" not in page


def test_a_queue_longer_than_the_wait_limit_postpones_the_call_instead_of_going_over_the_cap(account, vtex, learning, settings):
    """Sixteen threads of several workers on a low cap queue more than the limiter waits (30 s):
    the call is not made (the route is "paused" for the queue's length), never made early."""
    from integration import ratelimit

    settings.VTEX_RATE_LIMITS = {"get_order": 60, "*": 0}
    settings.VTEX_RATE_CEILINGS = {"get_order": 60, "*": 0}
    vtex.get(ORDER, json={"orderId": "1-01"})
    interval, _ = ratelimit.spacing(60)
    _, reserve = ratelimit._home()
    reserve(account.pk, "get_order", interval, 40)  # other workers hold the next 40 slots: about 42 s
    with pytest.raises(errors.RoutePaused) as info:
        client_for(account).get_order("1-01")
    assert info.value.retry_after >= 30 and "queued for the rate cap" in str(info.value)
    assert len(vtex.calls) == 0  # nothing went to VTEX ahead of its slot
    with pytest.raises(errors.RoutePaused) as again:
        client_for(account).get_order("1-01")
    assert again.value.retry_after >= info.value.retry_after  # the refused slot is not handed to the next call
