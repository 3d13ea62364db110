from django.core.management.base import BaseCommand

from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.outbox import send_due
from integration.pipeline.routing import sweep_unrouted


class Command(BaseCommand):
    help = "Dispatch every due sync, start-handling and update to VTEX now, in this process."

    def add_arguments(self, parser):
        parser.add_argument("--budget", type=float, help="Seconds to spend (default DISPATCH_BUDGET)")

    def handle(self, *args, budget=None, **options):
        swept = sweep_unrouted()
        if swept:
            self.stdout.write(f"routed {swept} events that had not been routed")
        self.stdout.write(dispatch_due(budget=budget).line())
        self.stdout.write(send_due(budget=budget).line())
