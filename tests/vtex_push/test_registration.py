"""register_hook / remove_hook against VTEX (responses), the daily re-registration, the admin."""
import json

import pytest
import responses
from django.contrib.messages import get_messages
from django_q.models import Schedule

from integration.vtex_push.registration import HookReregistrationFailed, register_hook, remove_hook, reregister_hooks
from integration.models import Account, FeedConfiguration
from integration.schedules import SCHEDULES, ensure_schedules
from tests.fake_feed import BASE
from tests.vtex_spec import assert_request_matches_spec

pytestmark = pytest.mark.django_db

HOOK_CONFIG = f"{BASE}/api/orders/hook/config"
PUBLIC = "https://hub.example.com"


@pytest.fixture
def public_url(settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    return PUBLIC


def vtex_echo(request):
    """VTEX answers the saved configuration (with its origin)."""
    body = json.loads(request.body)
    return 200, {}, json.dumps({**body, "origin": {"account": "teststore", "key": "vtexappkey-teststore-ABCDEF"}})


def assert_no_secret(account, *texts):
    secret = account.hook_secret
    for text in texts:
        assert secret not in str(text)


def test_register_sends_the_feed_filter_our_url_and_the_key_header(account, vtex, public_url):
    vtex.add_callback("POST", HOOK_CONFIG, callback=vtex_echo)
    result = register_hook(account)
    assert result.ok, result.message
    request = vtex.calls[0].request
    assert assert_request_matches_spec(request) == "/api/orders/hook/config"
    secret = account.hook_secret
    assert json.loads(request.body) == {
        "filter": {"type": "FromWorkflow", "status": ["ready-for-handling", "canceled"]},
        "hook": {"url": f"{PUBLIC}/hooks/vtex/{account.pk}/{secret}/", "headers": {"key": secret}},
    }
    assert result.status == 200 and result.url == f"{PUBLIC}/hooks/vtex/{account.pk}/*****/"
    assert result.vtex_answer["hook"] == {"url": result.url, "headers": {"key": "*****"}}
    assert "registered" in result.message
    assert_no_secret(account, result.message, result.url, result.vtex_answer, result.body, repr(result))


def test_the_url_vtex_gets_is_the_url_the_endpoint_answers(account, vtex, public_url, client):
    vtex.add_callback("POST", HOOK_CONFIG, callback=vtex_echo)
    register_hook(account)
    sent = json.loads(vtex.calls[0].request.body)["hook"]
    path = sent["url"].removeprefix(PUBLIC)
    assert client.post(path, data='{"hookConfig": "ping"}', content_type="application/json").status_code == 200
    header_form = f"/hooks/vtex/{account.pk}/"
    assert client.post(header_form, data='{"hookConfig": "ping"}', content_type="application/json",
                       headers=sent["headers"]).status_code == 200


def test_a_from_orders_filter_is_sent_as_it_is(account, vtex, public_url):
    FeedConfiguration.objects.filter(account=account).update(filter_type="FromOrders", statuses=[], expression='status = "invoiced"', disable_single_fire=True)
    vtex.add_callback("POST", HOOK_CONFIG, callback=vtex_echo)
    assert register_hook(account).ok
    body = json.loads(vtex.calls[0].request.body)
    assert body["filter"] == {"type": "FromOrders", "expression": 'status = "invoiced"', "disableSingleFire": True}
    assert_request_matches_spec(vtex.calls[0].request)


def test_vtex_400_after_a_failed_ping_is_shown_without_the_secret(account, vtex, public_url):
    url = f"{PUBLIC}/hooks/vtex/{account.pk}/{account.hook_secret}/"
    vtex.add("POST", HOOK_CONFIG, status=400, json={"error": {"code": "1", "message": f"The hook ping to {url} did not answer 200 (got 502)", "exception": None}})
    result = register_hook(account)
    assert not result.ok and result.status == 400
    assert "ping" in result.message and "did not answer 200 (got 502)" in result.message
    assert "PUBLIC_BASE_URL" in result.message
    assert "did not answer 200" in str(result.vtex_answer)
    assert_no_secret(account, result.message, result.vtex_answer, repr(result))


@pytest.mark.parametrize("base, words", [
    ("", "not set"),
    ("http://hub.example.com", "not https"),
    ("ftp://hub.example.com", "not https"),
    ("hub.example.com", "not a base URL"),
    ("https://hub.example.com/?a=1", "not a base URL"),
])
def test_a_missing_or_non_https_public_url_is_refused_before_calling_vtex(account, vtex, settings, base, words):
    settings.PUBLIC_BASE_URL = base
    result = register_hook(account)
    assert not result.ok and words in result.message and "not registered" in result.message
    assert len(vtex.calls) == 0


def test_loopback_http_is_allowed_only_for_a_store_on_a_sandbox(make_account, vtex, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    real = make_account(api_base_url="")
    assert "not https" in register_hook(real).message
    sandboxed = make_account(name="Sandbox", account_name="sandboxed", app_key="k2", api_base_url="http://127.0.0.1:8765")
    vtex.add("POST", "http://127.0.0.1:8765/api/orders/hook/config", json={})
    assert register_hook(sandboxed).ok


def test_inactive_store_is_not_registered(account, vtex, public_url):
    Account.objects.filter(pk=account.pk).update(active=False)
    account.refresh_from_db()
    result = register_hook(account)
    assert not result.ok and "inactive" in result.message and len(vtex.calls) == 0


def test_a_feed_only_store_is_registered_with_a_warning(account, vtex, public_url):
    vtex.add_callback("POST", HOOK_CONFIG, callback=vtex_echo)
    result = register_hook(account)
    assert result.ok and "intake mode is 'feed'" in result.message


def test_vtex_errors_become_results(account, vtex, public_url):
    vtex.add("POST", HOOK_CONFIG, status=403, body="forbidden")
    result = register_hook(account)
    assert not result.ok and result.status == 403 and "License Manager" in result.message
    vtex.replace("POST", HOOK_CONFIG, body=ConnectionError("no route to host"))
    result = register_hook(account)
    assert not result.ok and "NetworkError" not in result.message and "no route to host" in result.message


def test_remove(account, vtex):
    vtex.add("DELETE", HOOK_CONFIG, status=200)
    result = remove_hook(account)
    assert result.ok and "removed" in result.message
    assert assert_request_matches_spec(vtex.calls[0].request) == "/api/orders/hook/config"
    Account.objects.filter(pk=account.pk).update(intake_mode="hook")
    account.refresh_from_db()
    assert "daily re-registration will put the hook back" in remove_hook(account).message


def test_remove_when_vtex_has_none_is_ok_and_says_so(account, vtex):
    vtex.add("DELETE", HOOK_CONFIG, status=404, json={"error": {"message": "Hook configuration not found"}})
    result = remove_hook(account)
    assert result.ok and "nothing to remove" in result.message


def test_remove_failure_is_shown(account, vtex):
    vtex.add("DELETE", HOOK_CONFIG, status=429, headers={"Retry-After": "5"})
    result = remove_hook(account)
    assert not result.ok and result.status == 429


# --- the daily re-registration ----------------------------------------------------------------------
def test_reregister_hooks_registers_active_hook_and_both_stores_only(make_account, vtex, public_url):
    def store(name, mode, active=True, fail=False):
        base = f"https://{name}.vtexcommercestable.com.br"
        account = make_account(name=name, account_name=name, app_key=f"key-{name}", api_base_url=base, intake_mode=mode, active=active)
        if fail:
            vtex.add("POST", f"{base}/api/orders/hook/config", status=400, json={"error": {"message": "ping failed"}})
        else:
            vtex.add_callback("POST", f"{base}/api/orders/hook/config", callback=vtex_echo)
        return account

    store("hookstore", "hook")
    store("bothstore", "both")
    store("feedstore", "feed")
    store("inactive", "hook", active=False)
    store("failing", "both", fail=True)
    with pytest.raises(HookReregistrationFailed) as failed:  # after trying every store: a failed task in django-q
        reregister_hooks()
    called = sorted(c.request.url.split("//")[1].split(".")[0] for c in vtex.calls)
    assert called == ["bothstore", "failing", "hookstore"]
    line = str(failed.value)
    assert line.startswith("re-registered 2 of 3 hooks") and "failing" in line and "ping failed" in line
    Account.objects.filter(name="failing").update(active=False)
    assert reregister_hooks() == "re-registered 2 of 2 hooks"


def test_the_daily_schedule_exists():
    assert ("vtexhub: re-register hooks", "integration.tasks.reregister_vtex_push", 1440) in SCHEDULES
    ensure_schedules()
    schedule = Schedule.objects.get(name="vtexhub: re-register hooks")
    assert schedule.func == "integration.tasks.reregister_vtex_push" and schedule.minutes == 1440
    from django.utils.module_loading import import_string

    from integration import tasks

    assert import_string(schedule.func) is tasks.reregister_vtex_push
    assert tasks.reregister_vtex_push() == "re-registered 0 of 0 hooks"  # no store in hook mode here


# --- the admin -------------------------------------------------------------------------------------
CHANGELIST = "/admin/integration/account/"


def _messages(response):
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def test_admin_register_action_shows_one_message_per_store(admin_client, account, make_account, vtex, public_url):
    other = make_account(name="Other store", account_name="other", app_key="key-other", api_base_url="https://other.vtexcommercestable.com.br")
    vtex.add_callback("POST", HOOK_CONFIG, callback=vtex_echo)
    vtex.add("POST", "https://other.vtexcommercestable.com.br/api/orders/hook/config", status=400,
             json={"error": {"message": f"The hook ping to {PUBLIC}/hooks/vtex/{other.pk}/{other.hook_secret}/ did not answer 200"}})
    response = admin_client.post(CHANGELIST, {"action": "register_hook", "_selected_action": [account.pk, other.pk]}, follow=True)
    assert response.status_code == 200
    shown = _messages(response)
    assert ("success", f"Test store: hook registered in VTEX for {PUBLIC}/hooks/vtex/{account.pk}/*****/. "
            "Its intake mode is 'feed': switch it to 'hook' or 'both' or the daily re-registration will not keep the hook alive.") in shown
    errors = [m for level, m in shown if level == "error"]
    assert len(errors) == 1 and errors[0].startswith("Other store: VTEX refused the hook (400)")
    page = response.content.decode()
    assert "did not answer 200" in page
    assert_no_secret(account, page, shown)
    assert_no_secret(other, page, shown)


def test_admin_remove_action(admin_client, account, vtex):
    vtex.add("DELETE", HOOK_CONFIG, status=200)
    response = admin_client.post(CHANGELIST, {"action": "remove_hook", "_selected_action": [account.pk]}, follow=True)
    assert ("success", "Test store: hook removed from VTEX.") in _messages(response)


def test_admin_actions_need_the_change_permission(client, django_user_model, account, vtex):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_account"))
    client.force_login(viewer)
    response = client.post(CHANGELIST, {"action": "register_hook", "_selected_action": [account.pk]})
    assert len(vtex.calls) == 0
    assert response.status_code in (200, 302, 403)


def test_store_list_shows_the_last_hook_notification(admin_client, account, make_account, post_hook):
    hooked = make_account(name="Hooked", account_name="hooked", app_key="key-hooked", intake_mode="hook")
    page = admin_client.get(CHANGELIST).content.decode()
    assert "last hook notification" in page.lower()
    assert "never" in page  # the hook-mode store has had none yet
    from tests.vtex_push.payloads import notification

    assert post_hook(notification()).status_code == 200
    account.refresh_from_db()
    page = admin_client.get(CHANGELIST).content.decode()
    assert account.last_hook_at.strftime("%Y-%m-%d %H:%M") in page
    assert hooked.name in page
    assert "Register hook in VTEX" in page and "Remove hook" in page


def test_the_sandbox_refuses_the_hook_when_its_ping_fails_and_the_message_hides_the_secret(account, settings):
    import socket

    from vtex_sandbox import Sandbox, SandboxServer

    with socket.socket() as s:  # a loopback port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    sandbox = Sandbox(seed=3)
    sandbox.add_account("teststore", app_key=account.app_key, app_token="test-app-token-SECRET-123")
    with SandboxServer(sandbox, host="127.0.0.1", port=0) as server:
        Account.objects.filter(pk=account.pk).update(api_base_url=server.url)
        account.refresh_from_db()
        settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{dead_port}"
        result = register_hook(account)
    sandbox.close()
    assert not result.ok and result.status == 400
    assert f"The hook ping to http://127.0.0.1:{dead_port}/hooks/vtex/{account.pk}/" in result.message
    assert "did not answer 200 (got no response)" in result.message
    assert_no_secret(account, result.message, result.vtex_answer)
