"""The zero-set-up demo: an admin user and a clearly labelled store that points at the sandbox."""
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model

from integration.models import Account, AdapterBinding, ErpToken
from integration.operations.updates import revoke_tokens

DEMO_ACCOUNT = "demostore"
DEMO_APP_KEY = "vtexappkey-demostore-SANDBOX"
DEMO_APP_TOKEN = "sandbox-token-not-secret"  # the sandbox's own dev token; never a VTEX credential
DEMO_ERP_TOKEN_NAME = "Demo ERP (make run)"


def ensure_admin_user(username="admin", password=None):
    """Create the first superuser; returns the password if one was generated now, else None."""
    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return None
    password = password or secrets.token_urlsafe(12)
    User.objects.create_superuser(username=username, email="", password=password)
    return password


def ensure_demo_store(sandbox_url=None):
    """Create the demo store when the hub has no store at all. Returns it, or None."""
    if Account.objects.exists():
        return None
    account = Account(
        name="DEMO — sandbox store (not a real VTEX account)", account_name=DEMO_ACCOUNT, app_key=DEMO_APP_KEY,
        api_base_url=sandbox_url or settings.SANDBOX_URL, is_demo=True,
    )
    account.app_token = DEMO_APP_TOKEN
    account.save()
    drop = settings.VAR_DIR / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    binding = AdapterBinding(account=account, adapter_key="file_drop", name="Demo file drop (var/drop)")
    binding.apply_settings({"directory": str(drop)})
    binding.save()
    return account


def demo_erp_access():
    """(drop directory, a fresh ERP API token) for the demo ERP, or None without a demo file_drop binding.

    Only a token's hash is stored, so each start issues a new one for the demo ERP it starts and
    revokes the previous start's: the list of tokens on the demo binding does not grow."""
    binding = (AdapterBinding.objects.filter(account__is_demo=True, account__active=True, account__account_name=DEMO_ACCOUNT,
                                             adapter_key="file_drop", enabled=True).order_by("pk").first())
    directory = (binding.settings or {}).get("directory") if binding else None
    if not directory:
        return None
    revoke_tokens(ErpToken.objects.filter(binding=binding, name=DEMO_ERP_TOKEN_NAME))
    _row, token = ErpToken.issue(binding, name=DEMO_ERP_TOKEN_NAME)
    return directory, token
