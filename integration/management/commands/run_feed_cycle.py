from django.core.management.base import BaseCommand, CommandError

from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import feed_accounts, run_feed_cycle
from integration.models import Account


class Command(BaseCommand):
    help = "Run one whole feed cycle now, in this process: intake, routing, dispatch and start-handling."

    def add_arguments(self, parser):
        parser.add_argument("--account", help="VTEX account name (or store id) to run; default: every active store")
        parser.add_argument("--intake-only", action="store_true", help="Store and commit feed items; dispatch nothing")
        parser.add_argument("--budget", type=float, help="Seconds to spend per store (default FEED_CYCLE_BUDGET)")

    def handle(self, *args, account=None, intake_only=False, budget=None, **options):
        accounts = feed_accounts()
        if account:
            accounts = Account.objects.filter(account_name=account) | Account.objects.filter(pk=int(account) if account.isdigit() else -1)
            if not accounts.exists():
                raise CommandError(f"No store with the account name '{account}'.")
        if not accounts.exists():
            self.stdout.write("No active store polls the feed. Add one in the admin.")
            return
        for store in accounts:
            self.stdout.write(run_feed_cycle(store, budget=budget).line())
            if not intake_only:
                self.stdout.write(f"{store.account_name}: {dispatch_due(account_id=store.pk, budget=budget).line()}")
