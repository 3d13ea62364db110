"""The hook endpoint: VTEX POSTs order status changes here (one URL per store).

Thin on purpose: `intake` does the checking and storing. Nothing here calls VTEX or an ERP; the
stored event is dispatched by a worker, so the answer comes well inside VTEX's 5 s.
"""
import logging

from django.db import DataError, DatabaseError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from integration.vtex_push import intake
from integration.vtex_push.intake import HookRejected

log = logging.getLogger(__name__)


def _answer(status, **body):
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    if status == 503:
        response["Retry-After"] = "30"
    return response


@csrf_exempt
def vtex_hook(request, account_id, secret=None):
    """POST /hooks/vtex/<account_id>/<secret>/, or /hooks/vtex/<account_id>/ with a `key` header."""
    if request.method != "POST":
        response = _answer(405, error="Only POST is allowed here.")
        response["Allow"] = "POST"
        return response
    try:
        intake.check_declared_length(request.META.get("CONTENT_LENGTH"))
        account = intake.authenticate(account_id, secret if secret is not None else request.headers.get("key"))
        event = intake.parse_body(intake.read_body(request), account)
        if event is None:
            return _answer(200, ping=True)
        if event.error:
            # 200: VTEX's retries would bring the same body again; the operator sees it in the events.
            intake.store_notification(account, event)
            return _answer(200, recorded=True, routed=False, reason=event.error)
        if intake.store_notification(account, event):
            return _answer(200, stored=True)
        return _answer(200, duplicate=True)
    except HookRejected as exc:
        return _answer(exc.status, error=exc.message)
    except DataError as exc:  # a value the database refused: the input, not the hub
        log.warning("hook for store id=%s refused by the database: %s", account_id, exc)
        return _answer(400, error="The notification could not be stored: the database refused one of its values.")
    except DatabaseError:
        # Database down or locked for too long: 503, and VTEX delivers the notification again.
        log.exception("hook for store id=%s: database error", account_id)
        return _answer(503, error="The hub cannot store notifications right now; try again later.")
    except Exception:
        # Never a 500: something unexpected is logged and VTEX is asked to retry.
        log.exception("hook for store id=%s: unexpected error", account_id)
        return _answer(503, error="The hub cannot store notifications right now; try again later.")
