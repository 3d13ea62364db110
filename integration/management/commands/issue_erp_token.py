"""Issue a Bearer token for the ERP API of one store (printed once; only its hash is kept)."""
from django.core.management.base import BaseCommand, CommandError

from integration.models import Account, AdapterBinding, ErpToken


class Command(BaseCommand):
    help = "Issue an ERP API token for a store's adapter binding and print it once."

    def add_arguments(self, parser):
        parser.add_argument("store", help="The VTEX account name of the store.")
        parser.add_argument("--binding", default="", help="The binding's name (or adapter key) when the store has several.")
        parser.add_argument("--name", default="", help="What the token is for, e.g. 'SAP production'.")

    def handle(self, *args, store, binding, name, **options):
        accounts = list(Account.objects.filter(account_name=store))
        if not accounts:
            raise CommandError(f"No store with the VTEX account name '{store}'.")
        bindings = AdapterBinding.objects.filter(account__in=accounts).order_by("pk")
        if binding:
            chosen = [b for b in bindings if binding in (b.name, b.adapter_key)]
        else:
            chosen = list(bindings)
        if not chosen:
            raise CommandError(f"The store '{store}' has no adapter binding" + (f" named '{binding}'." if binding else "; add one in the admin first."))
        if len(chosen) > 1:
            names = ", ".join(b.name or b.adapter_key for b in chosen)
            raise CommandError(f"The store '{store}' has several bindings ({names}); choose one with --binding NAME.")
        row, token = ErpToken.issue(chosen[0], name=name)
        self.stderr.write(f"Token {row.hint}… for {chosen[0]} issued; it is shown once, keep it now:")
        self.stdout.write(token)
