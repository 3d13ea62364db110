"""Configure the store's hook in VTEX, re-configure it daily, remove it.

VTEX pings the URL while saving the configuration and answers 400 when the ping does not get a
200, so registering also proves that VTEX reaches the hub. VTEX removes a hook that had no
notifications for three days; `reregister_hooks` (a daily schedule) puts it back.

Secrets: the hook secret travels in the URL path and in the `key` header VTEX sends back to us.
Nothing returned from here (messages, URLs, VTEX's answer) contains it.
"""
import logging
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.urls import reverse

from integration.models import Account, FeedConfiguration, IntakeMode
from integration.redaction import redact
from integration.vtex import errors
from integration.pipeline.vtex_access import client_for

log = logging.getLogger(__name__)

MASK = "*****"  # URL-safe: reverse() leaves it as it is
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class HookResult:
    account: str
    action: str                       # "register" or "remove"
    ok: bool
    message: str
    url: str = ""                     # the hook URL with the secret masked
    status: int | None = None         # VTEX's HTTP status, when VTEX was called
    vtex_answer: object = None        # VTEX's answer (parsed JSON or text), secret masked
    body: dict = field(default=None, repr=False)  # what was sent, secret masked

    def __bool__(self):
        return self.ok


def hook_path(account, secret):
    return reverse("vtex-hook", kwargs={"account_id": str(account.pk), "secret": secret})


def _mask(value, secret):
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, MASK).replace(quote(secret, safe=""), MASK)
    if isinstance(value, dict):
        return {_mask(k, secret): _mask(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, secret) for v in value]
    return value


def public_base_url_problem(account):
    """Why PUBLIC_BASE_URL cannot be given to VTEX, or "" when it can."""
    base = (settings.PUBLIC_BASE_URL or "").strip()
    if not base:
        return "PUBLIC_BASE_URL is not set: VTEX needs the hub's public https address to send notifications to."
    parts = urlsplit(base)
    if not parts.netloc or parts.query or parts.fragment:
        return f"PUBLIC_BASE_URL '{base}' is not a base URL like https://hub.example.com."
    if parts.scheme == "https":
        return ""
    # VTEX accepts only https. The one exception: a store that talks to the local sandbox (API
    # base URL override) may be given a loopback http URL, which real VTEX could never reach.
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and account.api_base_url:
        return ""
    return f"PUBLIC_BASE_URL '{base}' is not https: VTEX accepts only https hook URLs."


def hook_url(account, secret):
    return settings.PUBLIC_BASE_URL.strip().rstrip("/") + hook_path(account, secret)


def masked_hook_url(account):
    base = (settings.PUBLIC_BASE_URL or "").strip().rstrip("/") or "<PUBLIC_BASE_URL>"
    return base + reverse("vtex-hook", kwargs={"account_id": str(account.pk), "secret": MASK})


def hook_body(account, secret):
    """VTEX's HookConfigurationRequest: the feed's filter, our URL and the `key` header."""
    config, _ = FeedConfiguration.objects.get_or_create(account=account)
    return {
        "filter": config.to_vtex()["filter"],
        "hook": {"url": hook_url(account, secret), "headers": {"key": secret}},
    }


def _failure(account, action, exc, secret, url):
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", "") or ""
    text = _mask(redact(str(exc)), secret)
    if isinstance(exc, errors.ClientError) and status == 400 and action == "register":
        text = (f"VTEX refused the hook (400). VTEX answers 400 when its ping to {url} did not get a 200: "
                f"check that PUBLIC_BASE_URL reaches this hub from the internet. VTEX said: {_mask(redact(body), secret)[:500]}")
    return HookResult(account=account.name, action=action, ok=False, message=f"{account.name}: {text}", url=url,
                      status=status, vtex_answer=_mask(redact(body), secret) or None)


def register_hook(account):
    """Create or replace the store's hook configuration in VTEX. Never raises for VTEX's answers."""
    url = masked_hook_url(account)
    if not account.active:
        return HookResult(account.name, "register", False, f"{account.name}: the store is inactive; the hub would refuse VTEX's ping.", url=url)
    problem = public_base_url_problem(account)
    if problem:
        return HookResult(account.name, "register", False, f"{account.name}: not registered. {problem}", url=url)
    secret = ""
    try:
        secret = account.hook_secret
        body = hook_body(account, secret)
        answer = client_for(account).save_hook_configuration(body)
    except errors.VtexError as exc:
        result = _failure(account, "register", exc, secret, url)
    except Exception as exc:  # a missing encryption key, a bad filter...: shown, never fatal to other stores
        log.exception("registering the hook of store=%s failed", account.account_name)
        text = _mask(redact(f"{type(exc).__name__}: {exc}"), secret)
        result = HookResult(account.name, "register", False, f"{account.name}: {text}", url=url)
    else:
        note = ""
        if account.intake_mode == IntakeMode.FEED:
            note = " Its intake mode is 'feed': switch it to 'hook' or 'both' or the daily re-registration will not keep the hook alive."
        result = HookResult(account.name, "register", True, f"{account.name}: hook registered in VTEX for {url}.{note}", url=url,
                            status=200, vtex_answer=_mask(answer, secret), body=_mask(body, secret))
    log.info("hook register store=%s ok=%s %s", account.account_name, result.ok, result.message)
    return result


def remove_hook(account):
    """Delete the store's hook configuration in VTEX (one per app key). A 404 means there was none."""
    url = masked_hook_url(account)
    try:
        client_for(account).delete_hook_configuration()
    except errors.NotFound:
        result = HookResult(account.name, "remove", True, f"{account.name}: VTEX had no hook configuration for this app key (404); nothing to remove.", url=url, status=404)
    except errors.VtexError as exc:
        result = _failure(account, "remove", exc, "", url)
    except Exception as exc:
        log.exception("removing the hook of store=%s failed", account.account_name)
        result = HookResult(account.name, "remove", False, f"{account.name}: {redact(f'{type(exc).__name__}: {exc}')}", url=url)
    else:
        note = ""
        if account.intake_mode != IntakeMode.FEED:
            note = f" Its intake mode is still '{account.intake_mode}': the daily re-registration will put the hook back; switch it to 'feed'."
        result = HookResult(account.name, "remove", True, f"{account.name}: hook removed from VTEX.{note}", url=url, status=200)
    log.info("hook remove store=%s ok=%s %s", account.account_name, result.ok, result.message)
    return result


def hook_accounts():
    return Account.objects.filter(active=True, intake_mode__in=[IntakeMode.HOOK, IntakeMode.BOTH])


class HookReregistrationFailed(Exception):
    """Raised after every store was tried, so the task shows under django-q's failed tasks."""


def reregister_hooks():
    """Daily django-q2 task: register again every active store in hook or both mode (VTEX removes
    a hook after three days without notifications). One store's failure does not stop the others;
    when any failed, the task fails (after trying them all) with every store's message."""
    results = [register_hook(account) for account in hook_accounts()]
    failed = [r for r in results if not r.ok]
    line = f"re-registered {len(results) - len(failed)} of {len(results)} hooks"
    if failed:
        raise HookReregistrationFailed(line + "; failed: " + " | ".join(r.message for r in failed))
    return line
