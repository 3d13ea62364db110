"""The feed configuration in the admin: statuses from the OMS list ("did you mean" for a typed
misspelling), JSONata checked before saving and tried on an order, and push / load to and from
VTEX behind a confirmation page that shows the difference."""
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from integration import expressions
from integration.operations import feed_configuration
from integration.operations import results
from integration.admin.forms import FeedConfigurationForm
from integration.models import FeedConfiguration
from integration.vtex.statuses import OMS_STATUSES
from tests.shared_fixtures import make_hub_order
from tests.admin.test_admin_stores import FEED_CONFIG, change_form_data, vtex_feed_config

pytestmark = pytest.mark.django_db


def save_store(client, account, **feed):
    data = change_form_data(client, account)
    for key in [k for k in data if k.startswith("feed_config-0-")]:
        if key.rsplit("-", 1)[1] in feed:
            del data[key]
    for name, value in feed.items():
        if value is not None:
            data[f"feed_config-0-{name}"] = value
    return client.post(reverse("admin:integration_account_change", args=[account.pk]), data)


def feed_errors(response):
    assert response.status_code == 200, "the form was accepted"
    formset = next(f.formset for f in response.context["inline_admin_formsets"] if f.formset.prefix == "feed_config")
    return formset.forms[0].errors


# --- statuses ------------------------------------------------------------------------------------------
def test_statuses_are_checkboxes_of_the_oms_list(admin_client, account):
    html = admin_client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    for status in OMS_STATUSES:
        assert f'value="{status}"' in html
    assert 'name="feed_config-0-statuses" value="ready-for-handling" class="oms-status-list" id="id_feed_config-0-statuses_' in html \
        or 'value="ready-for-handling"' in html
    response = save_store(admin_client, account, statuses=["ready-for-handling", "invoiced", "canceled"])
    assert response.status_code == 302
    # Stored in the OMS list's order: a stable body to compare with VTEX's.
    assert FeedConfiguration.objects.get(account=account).statuses == ["ready-for-handling", "invoiced", "canceled"]


def test_a_typed_misspelling_is_rejected_with_did_you_mean(admin_client, account):
    response = save_store(admin_client, account, statuses=["canceled"], other_statuses="ready-for-handlng")
    errors = feed_errors(response)
    assert errors["statuses"] == ["Unknown OMS status: 'ready-for-handlng' (did you mean 'ready-for-handling'?). "
                                  "VTEX does not check spellings; a misspelled status never fires. To save it anyway, "
                                  "tick \"I know this status is not in VTEX's lists\"."]
    assert "did you mean &#x27;ready-for-handling&#x27;?" in response.content.decode()
    assert FeedConfiguration.objects.get(account=account).statuses == ["ready-for-handling", "canceled"]


@pytest.mark.parametrize("spelling", ["order-completed", "cancelation-request", "waiting-for-sellers-confirmation"])
def test_spellings_from_vtex_docs_and_examples_are_accepted(admin_client, account, spelling):
    response = save_store(admin_client, account, statuses=["ready-for-handling", spelling])
    assert response.status_code == 302
    assert spelling in FeedConfiguration.objects.get(account=account).statuses
    html = admin_client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    assert f'value="{spelling}"' in html  # a checkbox of its own


def test_an_unknown_status_is_saved_after_the_operator_confirms_it(admin_client, account, vtex):
    errors = feed_errors(save_store(admin_client, account, statuses=["canceled"], other_statuses="order-shipped-custom"))
    assert "Unknown OMS status: 'order-shipped-custom'" in errors["statuses"][0]
    response = save_store(admin_client, account, statuses=["canceled"], other_statuses="order-shipped-custom",
                          confirm_unknown_statuses="on")
    assert response.status_code == 302
    config = FeedConfiguration.objects.get(account=account)
    assert (config.statuses, config.confirmed_statuses) == (["canceled", "order-shipped-custom"], ["order-shipped-custom"])
    config.full_clean(exclude=["account"])  # what a push checks: the confirmation is kept
    # Saving again unchanged keeps it; another unknown status needs its own confirmation.
    assert save_store(admin_client, account, statuses=["canceled"], other_statuses="order-shipped-custom").status_code == 302
    errors = feed_errors(save_store(admin_client, account, statuses=["canceled"], other_statuses="order-shipped-custom, ordr-x"))
    assert "'ordr-x'" in errors["statuses"][0] and "order-shipped-custom" not in errors["statuses"][0]
    # Removed from the list: the confirmation goes with it.
    assert save_store(admin_client, account, statuses=["canceled"], other_statuses="").status_code == 302
    assert FeedConfiguration.objects.get(account=account).confirmed_statuses == []


def test_a_rule_with_an_unknown_state_needs_the_confirmation(account):
    from django.core.exceptions import ValidationError

    from integration.models import RoutingRule

    rule = RoutingRule(account=account, state="order-completed", action="status")
    rule.full_clean()  # VTEX's own example spelling
    rule = RoutingRule(account=account, state="ready-for-handlnig", action="send")
    with pytest.raises(ValidationError) as info:
        rule.full_clean()
    [message] = info.value.message_dict["state"]
    assert "did you mean 'ready-for-handling'?" in message and "I know this status is not in VTEX's lists" in message
    rule.state_confirmed = True
    rule.full_clean()


def test_the_rule_confirmation_is_a_checkbox_on_the_store_form(admin_client, account):
    data = change_form_data(admin_client, account)
    total = int(data["rules-TOTAL_FORMS"])
    data.update({"rules-TOTAL_FORMS": str(total + 1), f"rules-{total}-state": "custom-state", f"rules-{total}-action": "status"})
    url = reverse("admin:integration_account_change", args=[account.pk])
    response = admin_client.post(url, data)
    assert response.status_code == 200 and "Unknown OMS status &#x27;custom-state&#x27;" in response.content.decode()
    data[f"rules-{total}-state_confirmed"] = "on"
    assert admin_client.post(url, data).status_code == 302
    assert account.rules.get(state="custom-state").state_confirmed is True


def test_a_forged_checkbox_value_gets_the_same_message(admin_client, account):
    errors = feed_errors(save_store(admin_client, account, statuses=["cancelled"]))
    assert "(did you mean 'canceled'?)" in errors["statuses"][0]


def test_typed_statuses_are_added_to_the_checked_ones(admin_client, account):
    response = save_store(admin_client, account, statuses=["canceled"], other_statuses="invoiced, ready-for-handling  handling")
    assert response.status_code == 302
    assert FeedConfiguration.objects.get(account=account).statuses == ["ready-for-handling", "handling", "invoiced", "canceled"]


def test_statuses_not_on_the_list_stay_visible_typed_in(account):
    config = account.feed_config
    config.statuses = ["ready-for-handling", "order-finished"]  # e.g. loaded from VTEX
    form = FeedConfigurationForm(instance=config)
    assert form.initial["statuses"] == ["ready-for-handling"]
    assert form.initial["other_statuses"] == "order-finished"


# --- JSONata ---------------------------------------------------------------------------------------------
def test_a_from_orders_expression_is_checked_for_syntax(admin_client, account):
    errors = feed_errors(save_store(admin_client, account, filter_type="FromOrders", statuses=[],
                                    expression='status = "ready-for-handling" and ('))
    assert errors["expression"][0].startswith("JSONata syntax error: Expected ) before end of expression")
    response = save_store(admin_client, account, filter_type="FromOrders", statuses=[],
                          expression='status = "ready-for-handling" and value > 10000')
    assert response.status_code == 302
    config = FeedConfiguration.objects.get(account=account)
    assert config.to_vtex()["filter"] == {"type": "FromOrders", "expression": 'status = "ready-for-handling" and value > 10000',
                                          "disableSingleFire": False}


def test_expression_services():
    assert expressions.expression_syntax_error("value > 100") is None
    assert expressions.expression_syntax_error("value >").startswith("JSONata syntax error")
    assert expressions.evaluate_expression("value > 100", {"value": 150}) == (True, "")
    assert expressions.evaluate_expression("items.quantity", {"items": [{"quantity": 1}, {"quantity": 2}]}) == ([1, 2], "")
    result, error = expressions.evaluate_expression("($f := function($x){$f($x)}; $f(1))", {})
    assert result is None and error.startswith("JSONata evaluation error")


def test_the_expression_page_tries_an_expression_on_the_latest_order(admin_client, account, vtex):
    # vtex: VTEX over HTTP with nothing registered; the page's VTEX check then fails, locally.
    config = account.feed_config
    config.filter_type, config.statuses, config.expression = "FromOrders", [], 'status = "ready-for-handling"'
    config.save()
    make_hub_order(account, "1-01", status="handling")
    latest = make_hub_order(account, "2-01")
    url = reverse("admin:integration_account_expression", args=[account.pk])
    response = admin_client.get(url)
    form = response.context["form"]
    assert form.initial["expression"] == 'status = "ready-for-handling"'
    assert json.loads(form.initial["document"])["orderId"] == latest.order_id
    response = admin_client.post(url, {"expression": 'status = "ready-for-handling" and value > 1000',
                                       "document": form.initial["document"]})
    html = response.content.decode()
    assert 'id="expression-result"' in html and "this order would be put in the feed" in html
    response = admin_client.post(url, {"expression": "value < 0", "document": form.initial["document"]})
    assert "would <strong>not</strong> be put in the feed" in response.content.decode()
    response = admin_client.post(url, {"expression": "value <", "document": "{}"})
    assert "JSONata syntax error" in response.content.decode()
    response = admin_client.post(url, {"expression": "value", "document": "{not json"})
    assert "Not valid JSON" in response.content.decode()


# --- push and load -----------------------------------------------------------------------------------------
def push_url(account):
    return reverse("admin:integration_account_feed_push", args=[account.pk])


def load_url(account):
    return reverse("admin:integration_account_feed_load", args=[account.pk])


def test_push_shows_the_difference_and_pushes_only_when_confirmed(admin_client, account, vtex):
    config = account.feed_config
    config.statuses = ["ready-for-handling", "invoiced", "canceled"]
    config.save()
    vtex.add("GET", FEED_CONFIG, json=vtex_feed_config(quantity=7, age=60))
    pushed = vtex.add("POST", FEED_CONFIG, status=200)
    response = admin_client.get(push_url(account))
    html = response.content.decode()
    assert pushed.call_count == 0
    assert "Every consumer of this app key shares this one feed" in html
    diff = [line for _, line in response.context["diff_lines"]]
    assert '+      "invoiced",' in diff and "--- VTEX now" in diff
    assert not [line for line in diff if line.startswith("-  ")]          # nothing removed
    assert 'id="confirm-feed"' in html and "7 message(s)" in html

    response = admin_client.post(push_url(account), {"confirm": "yes"}, follow=True)
    assert pushed.call_count == 1
    body = json.loads(vtex.calls[-1].request.body)
    assert body == {"filter": {"type": "FromWorkflow", "status": ["ready-for-handling", "invoiced", "canceled"]},
                    "queue": {"visibilityTimeoutInSeconds": 250, "MessageRetentionPeriodInSeconds": 345600}}
    assert [str(m) for m in response.context["messages"]] == [
        "Test store: feed configuration pushed to VTEX: FromWorkflow [ready-for-handling, invoiced, canceled], "
        "visibility timeout 250 s, retention 4.0 days."]
    config.refresh_from_db()
    assert config.last_pushed_body == body and timezone.now() - config.last_pushed_at < timezone.timedelta(minutes=1)
    html = admin_client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    assert config.last_pushed_at.strftime("%Y-%m-%d %H:%M") in html


def test_push_when_vtex_has_no_feed_creates_it(admin_client, account, vtex):
    vtex.add("GET", FEED_CONFIG, status=404, json={"error": {"message": "Feed configuration not found"}})
    html = admin_client.get(push_url(account)).content.decode()
    assert "pushing creates it" in html and "(no feed configuration)" in html


def test_the_same_configuration_says_so(admin_client, account, vtex):
    vtex.add("GET", FEED_CONFIG, json=vtex_feed_config())
    response = admin_client.get(push_url(account))
    assert response.context["diff_lines"] == [] and "changes nothing" in response.content.decode()


def test_an_invalid_local_configuration_is_not_pushed(admin_client, account, vtex):
    FeedConfiguration.objects.filter(account=account).update(statuses=["ready-for-handlng"])
    vtex.add("GET", FEED_CONFIG, json=vtex_feed_config())
    pushed = vtex.add("POST", FEED_CONFIG, status=200)
    response = admin_client.get(push_url(account))
    html = response.content.decode()
    assert 'id="local-errors"' in html and "did you mean" in html and 'id="confirm-feed"' not in html
    response = admin_client.post(push_url(account), {"confirm": "yes"}, follow=True)
    assert pushed.call_count == 0
    assert "not pushed: the feed configuration is not valid" in str(list(response.context["messages"])[0])


def test_vtex_refusing_the_push_is_reported(account, vtex):
    vtex.add("POST", FEED_CONFIG, status=409, json={"error": "mixed filter"})
    result = feed_configuration.push_feed_configuration(account)
    assert result.level == results.ERROR and "VTEX refused the feed configuration: Conflict" in result.text
    assert FeedConfiguration.objects.get(account=account).last_pushed_at is None


def test_load_shows_the_difference_then_overwrites_the_hubs(admin_client, account, vtex):
    remote = vtex_feed_config(statuses=["ready-for-handling", "invoiced"], retention=604800)
    vtex.add("GET", FEED_CONFIG, json=remote)
    response = admin_client.get(load_url(account))
    diff = [line for _, line in response.context["diff_lines"]]
    assert '-      "canceled"' in diff and '+      "invoiced"' in diff and '+    "MessageRetentionPeriodInSeconds": 604800,' in diff
    assert account.feed_config.statuses == ["ready-for-handling", "canceled"]   # nothing changed yet
    response = admin_client.post(load_url(account), {"confirm": "yes"}, follow=True)
    assert [m.level_tag for m in response.context["messages"]] == ["success"]
    config = FeedConfiguration.objects.get(account=account)
    assert (config.statuses, config.retention, config.visibility_timeout) == (["ready-for-handling", "invoiced"], 604800, 250)


def test_load_keeps_what_the_hub_would_not_accept_and_says_so(account, vtex):
    # (order-completed, VTEX's own example spelling, is accepted now: an unknown spelling stands in for it.)
    vtex.add("GET", FEED_CONFIG, json={"filter": {"type": "FromWorkflow", "status": ["order-finished"]},
                                       "queue": {"visibilityTimeoutInSeconds": 30, "MessageRetentionPeriodInSeconds": 345600}})
    result = feed_configuration.load_feed_configuration(account)
    assert result.level == results.WARNING and "The hub would not push it as it is" in result.text and "order-finished" in result.text
    assert FeedConfiguration.objects.get(account=account).statuses == ["order-finished"]


def test_load_from_orders_and_nothing_to_load(admin_client, account, vtex):
    vtex.add("GET", FEED_CONFIG, json={"filter": {"type": "FromOrders", "expression": "value > 100", "disableSingleFire": True},
                                       "queue": {"visibilityTimeoutInSeconds": 240, "messageRetentionPeriodInSeconds": 345600}})
    assert feed_configuration.load_feed_configuration(account).level == results.SUCCESS
    config = FeedConfiguration.objects.get(account=account)
    assert (config.filter_type, config.expression, config.disable_single_fire, config.visibility_timeout) == ("FromOrders", "value > 100", True, 240)
    vtex.replace("GET", FEED_CONFIG, status=404)
    html = admin_client.get(load_url(account)).content.decode()
    assert "there is nothing to load" in html and 'id="confirm-feed"' not in html


def test_normalise_feed_body_ignores_key_case_and_the_figures():
    raw = {"Filter": {"type": "FromWorkflow", "status": ["a"]}, "queue": {"VisibilityTimeoutInSeconds": 5, "messageRetentionPeriodInSeconds": 9},
           "quantity": 3, "approximateAgeOfOldestMessageInSeconds": 1}
    assert feed_configuration.normalise_feed_body(raw) == {"filter": {"type": "FromWorkflow", "status": ["a"]},
                                            "queue": {"visibilityTimeoutInSeconds": 5, "MessageRetentionPeriodInSeconds": 9}}


def test_loading_a_feed_that_delivers_cancellation_requests_adds_their_rule(account, vtex):
    vtex.add("GET", FEED_CONFIG, json={"filter": {"type": "FromWorkflow", "status": ["ready-for-handling", "cancellation-requested"]},
                                       "queue": {"visibilityTimeoutInSeconds": 250, "MessageRetentionPeriodInSeconds": 345600}})
    result = feed_configuration.load_feed_configuration(account)
    assert result.level == results.SUCCESS and "'cancellation-requested → Status changed' was added" in result.text
    assert list(account.rules.filter(state="cancellation-requested").values_list("action", flat=True)) == ["status"]
    assert "was added" not in feed_configuration.load_feed_configuration(account).text  # once
