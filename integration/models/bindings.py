"""An adapter installed for a store, with its settings."""
from django.core.exceptions import ValidationError
from django.db import models

from integration.crypto import encrypted_property
from integration.models.accounts import Account
from integration.plugins.contract import SettingsError
from integration.plugins.manager import get_registry


class AdapterNotInstalled(Exception):
    pass


class AdapterBinding(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="bindings")
    adapter_key = models.CharField(max_length=100, help_text="The key of an installed adapter, e.g. webhook or file_drop.")
    name = models.CharField(max_length=120, blank=True, default="")
    enabled = models.BooleanField(default=True, help_text="A disabled binding holds its syncs; it never fails them.")
    gates_start_handling = models.BooleanField(default=True, help_text="start-handling waits until this adapter accepted the order.")
    actions = models.JSONField(default=list, blank=True, help_text="Actions this binding takes: send, cancel, status. Empty means all the adapter supports.")
    settings = models.JSONField(default=dict, blank=True)
    secret_settings_ciphertext = models.TextField(default="", blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Circuit breaker: after BREAKER_THRESHOLD transient failures in a row the ERP is not called
    # until breaker_open_until; then one probe decides whether it closes.
    breaker_failures = models.PositiveIntegerField(default=0, editable=False)
    breaker_open_until = models.DateTimeField(null=True, blank=True, editable=False)

    secret_settings = encrypted_property("secret_settings_ciphertext", is_json=True)

    class Meta:
        ordering = ["account", "id"]
        verbose_name = "adapter binding"

    def __str__(self):
        return f"{self.account} → {self.name or self.adapter_key}"

    def adapter_class(self):
        return get_registry().get_adapter_class(self.adapter_key)

    def supported_actions(self):
        cls = self.adapter_class()
        if cls is None:
            return set()
        wanted = set(self.actions or cls.actions)
        return wanted & set(cls.actions)

    def takes(self, action):
        return action in self.supported_actions()

    def build_adapter(self):
        cls = self.adapter_class()
        if cls is None:
            raise AdapterNotInstalled(f"Adapter '{self.adapter_key}' is not installed.")
        config = {**(self.settings or {}), **self.secret_settings, "_account": self.account.account_name}
        return cls(config)

    def apply_settings(self, raw):
        """Validate with the adapter and split secret from plain settings. Raises ValidationError."""
        cls = self.adapter_class()
        if cls is None:
            raise ValidationError({"adapter_key": f"No installed adapter has the key '{self.adapter_key}'."})
        secret_names = cls.secret_setting_names()
        merged = {**self.secret_settings, **{k: v for k, v in raw.items() if not (k in secret_names and v in ("", None))}}
        try:
            cleaned = cls.validate_settings(merged)
        except SettingsError as exc:
            raise ValidationError({"settings": [f"{field}: {msg}" for field, msg in exc.errors.items()]})
        self.settings = {k: v for k, v in cleaned.items() if k not in secret_names}
        self.secret_settings = {k: v for k, v in cleaned.items() if k in secret_names and v not in ("", None)}
