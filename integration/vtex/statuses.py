"""OMS workflow status spellings (FACTS.md section 4): the spec's FromWorkflow list plus the
Help Center table. VTEX does not validate feed filter spellings, so the hub does."""
import difflib

SPEC_STATUSES = (
    "order-created", "on-order-completed", "on-order-completed-ffm", "payment-pending",
    "waiting-for-order-authorization", "approve-payment", "payment-approved", "request-cancel",
    "waiting-for-seller-decision", "waiting-ffmt-authorization", "waiting-for-authorization",
    "waiting-for-manual-authorization", "authorize-fulfillment", "order-create-error",
    "order-creation-error", "window-to-cancel", "window-to-change-seller",
    "waiting-for-mkt-authorization", "waiting-seller-handling", "ready-for-handling",
    "start-handling", "handling", "invoice-after-cancellation-deny", "order-accepted", "invoice",
    "invoiced", "replaced", "cancellation-requested", "cancel", "canceled",
)
HELP_CENTER_ONLY = ("window-to-change-payment", "waiting-for-fulfillment", "ready-for-invoicing")
OMS_STATUSES = SPEC_STATUSES + HELP_CENTER_ONLY

READY_FOR_HANDLING = "ready-for-handling"
CANCELED = "canceled"
# A marketplace asks the seller to cancel: the ERP answers through the way back (a cancel update).
CANCELLATION_REQUESTED = "cancellation-requested"
CANCELED_STATES = frozenset({"canceled"})


def suggest(status):
    """The closest known spelling, for a 'did you mean' message."""
    matches = difflib.get_close_matches(status, OMS_STATUSES, n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_statuses(statuses):
    return [s for s in statuses if s not in OMS_STATUSES]
