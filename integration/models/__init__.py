from integration.models.accounts import (  # noqa: F401
    ANY_STATE, Account, EventDomains, FeedConfiguration, FilterType, IntakeMode, RouteCap, RoutePause, RoutingRule,
    RuleAction,
)
from integration.models.bindings import AdapterBinding, AdapterNotInstalled  # noqa: F401
from integration.models.feed import EventSource, FeedEvent, FeedPollerSlot  # noqa: F401
from integration.models.orders import (  # noqa: F401
    DELIVERED_STATUSES, AttemptOutcome, FailedSync, HeldSync, Order, OrderSync, StartHandlingState,
    SyncAttempt, SyncStatus,
)
from integration.models.operations import Alert, AlertKind, VtexResponseCount  # noqa: F401,E402
from integration.models.updates import (  # noqa: F401,E402
    ErpToken, FailedUpdate, UpdateAttempt, UpdateKind, UpdateSource, UpdateStatus, VtexUpdate, WaitingFor,
)
