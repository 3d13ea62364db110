"""Bearer tokens of the inbound API: one or more per adapter binding, scoped to its store."""
from datetime import timedelta

from django.db.models import Q
from django.db.models.functions import Now
from ninja.errors import HttpError
from ninja.security import HttpBearer

from integration.models import Account, ErpToken
from integration.models.updates import hash_token

LAST_USED_EVERY = timedelta(minutes=1)  # at most one write per token and minute


class ErpBearer(HttpBearer):
    """Resolves the token and the {store} of the path to the binding the ERP acts for.

    Answers: no token → 401; a store nobody has → 404; a token the hub does not know → 401; a
    revoked token → 403; a token of another store → 403."""

    def __call__(self, request):
        if not request.headers.get(self.header):
            return None  # ninja answers 401
        return super().__call__(request)

    def authenticate(self, request, token):
        store = (request.resolver_match.kwargs.get("store") if request.resolver_match else "") or ""
        if not Account.objects.filter(account_name=store).exists():
            raise HttpError(404, f"No store '{store[:100]}' on this hub.")
        row = (ErpToken.objects.select_related("binding__account").filter(token_hash=hash_token(token.strip())).first()
               if token and len(token) <= 200 else None)
        if row is None:
            raise HttpError(401, "Unknown token.")
        if row.revoked_at is not None:
            raise HttpError(403, "This token was revoked.")
        if row.binding.account.account_name != store:
            raise HttpError(403, "This token belongs to another store.")
        ErpToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=Now() - LAST_USED_EVERY), pk=row.pk).update(last_used_at=Now())
        return row
