"""The hub's admin site: its name, the index in operator order, the store page's action buttons."""
import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse


def test_the_site_is_named_vtex_order_hub_everywhere(client, admin_client):
    login = client.get(reverse("admin:login")).content.decode()
    assert '<div id="site-name"><a href="/admin/">VTEX order hub</a></div>' in login
    assert "Django administration" not in login and "Django site admin" not in login
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert "<title>Operations | VTEX order hub</title>" in index


def test_the_index_lists_the_hub_in_operator_order_then_the_task_queue(admin_client):
    apps = admin_client.get(reverse("admin:index")).context["app_list"]
    assert apps[0]["name"] == "VTEX order hub" and apps[-1]["name"] == "Task queue (django-q2 internals)"
    assert [m["name"] for m in apps[0]["models"]] == [
        "Health dashboard", "Failed syncs", "Held syncs", "Failed updates to VTEX", "Orders", "Order syncs",
        "Updates to VTEX", "Stores", "Adapter bindings", "ERP API tokens", "Installed plugins", "Alerts", "Feed events"]


def test_the_hub_pages_are_listed_only_to_who_may_open_them(client, django_user_model):
    clerk = django_user_model.objects.create_user("clerk", password="clerk-password-123", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_order"))
    client.force_login(clerk)
    [hub] = client.get(reverse("admin:index")).context["app_list"]
    assert [m["name"] for m in hub["models"]] == ["Orders"]
    assert client.get(reverse("admin:integration_dashboard")).status_code == 403


def test_the_store_page_offers_its_actions_as_buttons_to_operators(operator_client, account):
    page = operator_client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    for slug, label in [("check-connection", "Test connection"), ("run-feed-cycle", "Run feed cycle now"),
                        ("reconcile-stores", "Reconcile now")]:
        assert f'id="page-action-{slug}">{label}</button>' in page


def test_a_store_page_button_runs_the_action_on_that_store_only(operator_client, make_account):
    store = make_account(name="Sleeping store", active=False)
    make_account(name="Other store", account_name="otherstore", app_key="vtexappkey-otherstore-X")
    url = reverse("admin:integration_account_page_action", args=[store.pk, "run_feed_cycle"])
    response = operator_client.post(url, follow=True)
    assert response.redirect_chain == [(reverse("admin:integration_account_change", args=[store.pk]), 302)]
    assert [str(m) for m in response.context["messages"]] == [
        "Sleeping store: inactive: no feed cycle runs for it. Make it active first."]


@pytest.mark.parametrize("method, action, status", [("get", "run_feed_cycle", 405), ("post", "delete_selected", 405)])
def test_a_store_page_button_only_posts_the_pages_actions(operator_client, account, method, action, status):
    url = reverse("admin:integration_account_page_action", args=[account.pk, action])
    assert getattr(operator_client, method)(url).status_code == status


def test_a_viewer_gets_no_buttons_and_cannot_post_them(client, django_user_model, account):
    viewer = django_user_model.objects.create_user("vera", password="vera-password-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_account"))
    client.force_login(viewer)
    page = client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    assert "page-action-" not in page
    url = reverse("admin:integration_account_page_action", args=[account.pk, "run_feed_cycle"])
    assert client.post(url).status_code == 403


def test_long_names_are_cut_with_the_whole_name_on_hover(admin_client, make_account):
    name = "A store whose name is far longer than any column of a list should ever have to hold, really"
    make_account(name=name)
    html = admin_client.get(reverse("admin:integration_account_changelist")).content.decode()
    assert f'class="hub-truncate" style="max-width:16em" title="{name}">{name}</span>' in html
