"""Typed errors of the VTEX client. `transient` says whether a later retry may succeed."""
import json


class VtexError(Exception):
    transient = False

    def __init__(self, message, *, route="", status=None, body=""):
        super().__init__(message)
        self.route, self.status, self.body = route, status, body


class Unauthorized(VtexError):
    """401 or 403: the app key/token is wrong or lacks a License Manager resource."""


class NotFound(VtexError):
    """404: the order does not exist, or the app key has no feed configuration."""


class Conflict(VtexError):
    """409, e.g. OMS003 'Order status should be ready-for-handling'."""

    @property
    def code(self):
        try:
            return json.loads(self.body).get("error", {}).get("code", "")
        except (ValueError, AttributeError):
            return ""


class RateLimited(VtexError):
    """429, or 503 from a circuit breaker: the store's route is paused until retry_after."""

    transient = True

    def __init__(self, message, *, retry_after, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class RoutePaused(RateLimited):
    """Not sent: an earlier 429/503 paused this route for every worker."""


class ServerError(VtexError):
    transient = True


class NetworkError(VtexError):
    transient = True


class BadResponse(VtexError):
    """VTEX answered something that is not the JSON it documents."""

    transient = True


class ClientError(VtexError):
    """Another 4xx: the request itself is wrong; retrying will not help."""
