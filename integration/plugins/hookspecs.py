"""Every hook a plugin can implement, in one place (datasette style).

Observer hooks receive plain, frozen values (`integration.plugins.events`), never database rows.

Plugins mark their implementations with `from integration.plugins import hookimpl`. The hub
never calls these hooks as a broadcast: `integration.plugins.manager` calls each plugin's
implementation on its own, so one plugin's exception never stops another's.
"""
import pluggy

PROJECT_NAME = "vtexhub"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def erp_adapters():
    """Return a list of `integration.plugins.contract.Adapter` subclasses this plugin provides."""


@hookspec
def sync_succeeded(sync):
    """Observer: a sync was delivered by its adapter. `sync` is a `SyncInfo` (plain data)."""


@hookspec
def sync_failed(sync, error):
    """Observer: a sync failed for good (maximum attempts reached, or a permanent error).

    `sync` is a `SyncInfo`; `error` is the (redacted) error message shown to the operator.
    """


@hookspec
def feed_cycle_finished(account, summary):
    """Observer: one store's feed cycle ended.

    `account` is a `StoreInfo` (id, account_name, name); `summary` is a dict with the counts
    fetched / new / duplicate / committed and `error` (a message, or empty).
    """


@hookspec
def alert_changed(alert, recovered):
    """Observer: an alert episode opened (`recovered` False) or ended (`recovered` True).

    `alert` is an `AlertInfo` (kind, kind_label, subject, store, message, opened_at, resolved_at). Each
    episode is announced once when it opens and once when it recovers; the built-in channels
    (e-mail, webhook) implement this hook, and a plugin can add its own (chat, paging).
    """
