"""OMS workflow status spellings: VTEX's OpenAPI list for the FromWorkflow filter, the Help Center's
order-flow table, and the spellings VTEX's own guides and examples use. VTEX does not validate feed
filter spellings (a misspelled status silently never fires), so the hub does; an operator can still
save a status outside these lists after confirming it (see `FeedConfiguration` and `RoutingRule`).

VTEX's lists disagree:
- The OpenAPI file lists 30 statuses the FromWorkflow filter accepts; the Help Center's order-flow
  table adds three (`HELP_CENTER_ONLY`).
- `order-completed` is in neither list, yet VTEX's feed guide, its older feed set-up tutorial and
  the OpenAPI file's own hook examples use it (the lists say `on-order-completed`).
- `cancelation-request` is what VTEX's ERP integration guide and FAQ write; the lists say
  `cancellation-requested`.
- `waiting-for-sellers-confirmation` appears only in the List orders `f_status` description.
All three are accepted: they are VTEX's own spellings, and which one a given account emits is not
documented.
"""
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
# Used in VTEX's guides and examples, in neither list (see the module docstring).
USED_IN_VTEX_DOCS = ("order-completed", "cancelation-request", "waiting-for-sellers-confirmation")
OMS_STATUSES = SPEC_STATUSES + HELP_CENTER_ONLY + USED_IN_VTEX_DOCS
# Said to the operator when a status is in none of the lists; the admin forms offer this checkbox.
CONFIRM_UNKNOWN_LABEL = "I know this status is not in VTEX's lists"

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


def unknown_message(bad):
    """'Unknown OMS status: 'x' (did you mean 'y'?)' for a list of unknown spellings."""
    hints = []
    for status in bad:
        guess = suggest(status)
        hints.append(f"'{status}' (did you mean '{guess}'?)" if guess else f"'{status}'")
    return "Unknown OMS status: " + ", ".join(hints)
