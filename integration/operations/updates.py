"""What an operator does to updates to VTEX: retry, resolve by hand, abandon, enter an invoice,
issue and revoke ERP API tokens. One function per action; the admin only calls these."""
from django.db.models.functions import Now

from integration.models import ErpToken, UpdateSource, UpdateStatus, VtexUpdate
from integration.operations.results import rows_changed
from integration.pipeline.update_intake import accept_update, refusals_awaiting_decision
from integration import queueing

RETRYABLE = (UpdateStatus.FAILED, UpdateStatus.HELD, UpdateStatus.QUEUED, UpdateStatus.ABANDONED)
RESOLVABLE = (UpdateStatus.FAILED, UpdateStatus.HELD, UpdateStatus.QUEUED)


WHY_LEFT_ALONE = "sent, being sent or already resolved"


def open_update_figures(account_ids):
    """{store pk: (held, failed)} updates to VTEX: one grouped query."""
    from django.db.models import Count

    figures = {}
    rows = (VtexUpdate.objects.filter(account_id__in=account_ids, status__in=(UpdateStatus.HELD, UpdateStatus.FAILED))
            .order_by().values_list("account_id", "status").annotate(n=Count("pk")))
    for account_id, status, n in rows:
        held, failed = figures.get(account_id, (0, 0))
        figures[account_id] = (held + n, failed) if status == UpdateStatus.HELD else (held, failed + n)
    return figures


def refusal_figures(account_ids):
    """{store pk: n} cancellation requests the ERP refused that still wait for a decision: one grouped query."""
    from django.db.models import Count

    rows = (refusals_awaiting_decision().filter(account_id__in=account_ids).order_by()
            .values_list("account_id").annotate(n=Count("pk")))
    return dict(rows)


def retry_updates(queryset):
    """Queued again and due now, attempts from zero. A held update waits again if it still must."""
    total = queryset.count()
    stores = sorted(set(queryset.filter(status__in=RETRYABLE).values_list("account_id", flat=True)))
    changed = VtexUpdate.objects.filter(pk__in=queryset.values("pk"), status__in=RETRYABLE).update(
        status=UpdateStatus.QUEUED, attempts=0, next_attempt_at=Now(), waiting_for="", hold_reason="",
        resolved_by=None, resolved_at=None)
    for account_id in stores:  # sent within seconds, not when the scheduled dispatcher next runs
        queueing.enqueue("integration.tasks.send_updates", account_id)
    return rows_changed("Retrying now", changed=changed, left_alone=total - changed, stores=stores, noun="update",
                        why_left_alone=WHY_LEFT_ALONE)


def _resolve(queryset, user, status, verb):
    total = queryset.count()
    changed = VtexUpdate.objects.filter(pk__in=queryset.values("pk"), status__in=RESOLVABLE).update(
        status=status, resolved_by=user, resolved_at=Now(), next_attempt_at=None)
    return rows_changed(verb, changed=changed, left_alone=total - changed, noun="update", why_left_alone=WHY_LEFT_ALONE)


def resolve_updates(queryset, user):
    """The operator did it in VTEX's admin: nothing more is sent."""
    return _resolve(queryset, user, UpdateStatus.RESOLVED, "Marked resolved (done by hand in VTEX)")


def abandon_updates(queryset, user):
    return _resolve(queryset, user, UpdateStatus.ABANDONED, "Abandoned")


def enter_invoice(order, body, user):
    """The operator's invoice form: the same validation and outbox as the ERP's."""
    return accept_update(order.account, order.order_id, "invoice", body, source=UpdateSource.OPERATOR,
                         who=getattr(user, "get_username", lambda: "")(), user=user)


def issue_token(binding, name, user):
    return ErpToken.issue(binding, name=name, user=user)


def revoke_tokens(queryset):
    return queryset.filter(revoked_at__isnull=True).update(revoked_at=Now())
