from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from integration.crypto import SecretDecryptionError, rotate
from integration.models import Account, AdapterBinding

ENCRYPTED_COLUMNS = [
    (Account, ["app_token_ciphertext", "hook_secret_ciphertext"]),
    (AdapterBinding, ["secret_settings_ciphertext"]),
]


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret with the first key of HUB_ENCRYPTION_KEYS. Put the new key first, "
            "keep the old ones after it, run this, then drop the old keys.")

    def handle(self, *args, **options):
        total = 0
        try:
            with transaction.atomic():
                for model, columns in ENCRYPTED_COLUMNS:
                    for row in model.objects.only("pk", *columns).iterator():
                        updates = {c: rotate(getattr(row, c)) for c in columns if getattr(row, c)}
                        if updates:
                            model.objects.filter(pk=row.pk).update(**updates)
                            total += len(updates)
        except SecretDecryptionError as exc:
            raise CommandError(f"{exc} Nothing was changed.") from None
        self.stdout.write(f"Re-encrypted {total} secrets with the newest key.")
