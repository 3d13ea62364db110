"""The routes of the inbound API. Thin: authenticate, let ninja validate VTEX's body, call the
intake service, say what happened. Every answer is JSON; no input makes it answer 500."""
import json
import logging

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from ninja import NinjaAPI, Path, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError

from integration.erp_api.auth import ErpBearer
from integration.models import UpdateKind, UpdateSource, VtexUpdate
from integration.pipeline.update_intake import DUPLICATE, UpdateRefused, VtexUnavailable, accept_update
from integration.update_bodies import BodyInvalid, CancelBody, DeliveryBody, InvoiceBody, TrackingBody, describe_errors

log = logging.getLogger(__name__)

DESCRIPTION = """\
VTEX's Orders API paths for the way back (invoice, tracking number, delivery events, cancel),
served by the hub under `/erp-api/{store}/`: an ERP connector that already speaks VTEX's API only
changes its base URL to `https://<hub>/erp-api/<store>` and sends `Authorization: Bearer <token>`
instead of VTEX's app key and token. Bodies are exactly VTEX's.

The hub stores each update before it answers **202** `{"id": …, "status": "queued"}` and sends it
to VTEX in order (start-handling before the invoice, the invoice before its tracking). The same
update again answers **200** with the same id and changes nothing. Follow an update with
`GET /erp-api/{store}/updates/{id}`.
"""

api = NinjaAPI(
    title="VTEX order hub: ERP API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="erp_api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    auth=ErpBearer(),
)


class UpdateAnswer(Schema):
    id: int
    status: str
    kind: str
    orderId: str
    invoiceNumber: str | None = None
    correctionOf: int | None = None
    replaced: bool = False


class UpdateState(UpdateAnswer):
    holdReason: str = ""
    lastError: str = ""
    attempts: int = 0
    vtexReceipt: str = ""
    vtexAnswer: str = ""
    createdAt: str
    sentAt: str | None = None


class ErrorAnswer(Schema):
    error: str
    field: str | None = None
    errors: list[dict] | None = None


def _error(request, status, message, **extra):
    return api.create_response(request, {"error": message, **extra}, status=status)


@api.exception_handler(ValidationError)
def _invalid(request, exc):
    # ninja says 422; VTEX (and this API's contract) say 400, naming the field.
    described = describe_errors(exc.errors)
    first = described[0] if described else {"field": "", "message": "invalid body"}
    if first["field"] in ("", "body"):
        return _error(request, 400, f"The body is not VTEX's: {first['message']}", field=None, errors=described)
    return _error(request, 400, f"{first['field']}: {first['message']}", field=first["field"], errors=described)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    response = _error(request, 401, "Send 'Authorization: Bearer <token>' with a token issued for this store.")
    response["WWW-Authenticate"] = 'Bearer realm="erp-api"'
    return response


@api.exception_handler(HttpError)
def _http_error(request, exc):
    return _error(request, exc.status_code, exc.message)


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _error(request, 404, "Not found.")


def path_not_found(request):
    """Any other path under /erp-api/ (an empty order id: `orders//invoice`): JSON like the rest of
    this API, not Django's HTML page. Mounted after the API's own routes in integration/urls.py."""
    return _error(request, 404, "Not found: no such path in the ERP API (its paths are in /erp-api/openapi.json).")


@api.exception_handler(Exception)
def _unexpected(request, exc):
    if isinstance(exc, (RequestDataTooBig, SuspiciousOperation, json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError)):
        return _error(request, 400, f"The request could not be read: {type(exc).__name__}.")
    log.exception("ERP API: unexpected error")
    response = _error(request, 503, "The hub could not handle this update now; nothing was stored. Send it again later.")
    response["Retry-After"] = "30"
    return response


def _answer(request, accepted):
    update = accepted.update
    status = 200 if accepted.outcome == DUPLICATE else 202
    return Status(status, _describe(update, replaced=accepted.outcome == "replaced"))


def _describe(update, **extra):
    return {"id": update.pk, "status": update.status, "kind": update.kind, "orderId": update.order.order_id,
            "invoiceNumber": update.invoice_number or None, "correctionOf": update.correction_of_id, **extra}


def _accept(request, order_id, kind, body, invoice_number=""):
    token = request.auth
    try:
        accepted = accept_update(token.binding.account, order_id, kind, body.model_dump(mode="json", exclude_unset=True),
                                 invoice_number=invoice_number, source=UpdateSource.API,
                                 who=f"token {token.hint}… ({token.name or token.binding})")
    except BodyInvalid as exc:
        return Status(400, {"error": str(exc), "field": exc.field or None, "errors": exc.errors or None})
    except VtexUnavailable as exc:
        return Status(503, {"error": exc.message})
    except UpdateRefused as exc:
        return Status(exc.code, {"error": exc.message})
    return _answer(request, accepted)


RESPONSES = {200: UpdateAnswer, 202: UpdateAnswer, 400: ErrorAnswer, 401: ErrorAnswer, 403: ErrorAnswer,
             404: ErrorAnswer, 409: ErrorAnswer, 503: ErrorAnswer}
OrderId = Path(..., max_length=64, pattern=r"^[^\x00-\x1f/]+$")
InvoiceNumber = Path(..., max_length=100, pattern=r"^[^\x00-\x1f/]+$")


@api.post("/{store}/api/oms/pvt/orders/{order_id}/invoice", response=RESPONSES, tags=["updates"],
          summary="Invoice notification", operation_id="invoice")
def invoice(request, store: str, body: InvoiceBody, order_id: str = OrderId):
    return _accept(request, order_id, UpdateKind.INVOICE, body)


@api.patch("/{store}/api/oms/pvt/orders/{order_id}/invoice/{invoice_number}", response=RESPONSES, tags=["updates"],
           summary="Send the tracking number of an invoice", operation_id="tracking")
def tracking(request, store: str, body: TrackingBody, order_id: str = OrderId, invoice_number: str = InvoiceNumber):
    return _accept(request, order_id, UpdateKind.TRACKING, body, invoice_number)


@api.put("/{store}/api/oms/pvt/orders/{order_id}/invoice/{invoice_number}/tracking", response=RESPONSES, tags=["updates"],
         summary="Update the tracking status (delivery events)", operation_id="delivery")
def delivery(request, store: str, body: DeliveryBody, order_id: str = OrderId, invoice_number: str = InvoiceNumber):
    return _accept(request, order_id, UpdateKind.DELIVERY, body, invoice_number)


@api.post("/{store}/api/oms/pvt/orders/{order_id}/cancel", response=RESPONSES, tags=["updates"],
          summary="Cancel the order", operation_id="cancel")
def cancel(request, store: str, body: CancelBody | None = None, order_id: str = OrderId):
    return _accept(request, order_id, UpdateKind.CANCEL, body or CancelBody())


@api.get("/{store}/updates/{update_id}", response={200: UpdateState, 401: ErrorAnswer, 403: ErrorAnswer, 404: ErrorAnswer},
         tags=["updates"], summary="The state of one accepted update", operation_id="update_state")
def update_state(request, store: str, update_id: int):
    update = (VtexUpdate.objects.select_related("order").filter(pk=update_id, account=request.auth.binding.account).first()
              if 0 < update_id < 2**63 else None)
    if update is None:
        return Status(404, {"error": f"No update {update_id} in this store."})
    return Status(200, {
        **_describe(update), "holdReason": update.hold_reason, "lastError": update.last_error, "attempts": update.attempts,
        "vtexReceipt": update.vtex_receipt, "vtexAnswer": update.vtex_answer, "createdAt": update.created_at.isoformat(),
        "sentAt": update.sent_at.isoformat() if update.sent_at else None,
    })
