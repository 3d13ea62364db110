from django.core.management.base import BaseCommand, CommandError

from integration.pipeline.sync_order import sync_order
from integration.pipeline.dispatch import dispatch_due
from integration.models import Account
from integration.vtex.errors import VtexError


class Command(BaseCommand):
    help = "Bring one order in by id and send it through the same path as feed orders."

    def add_arguments(self, parser):
        parser.add_argument("store", help="VTEX account name of the store")
        parser.add_argument("order_id")
        parser.add_argument("--no-dispatch", action="store_true", help="Only store and route; let the workers dispatch")

    def handle(self, *args, store, order_id, no_dispatch=False, **options):
        account = Account.objects.filter(account_name=store).first()
        if account is None:
            raise CommandError(f"No store with the account name '{store}'.")
        try:
            result = sync_order(account, order_id)
        except VtexError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{order_id}: {'stored and routed' if result.new else 'already known (nothing new)'}")
        if not no_dispatch:
            self.stdout.write(dispatch_due(account_id=account.pk).line())
