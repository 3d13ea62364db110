"""Run the loopback ERP (a development tool for the webhook adapter) until Ctrl-C."""
import argparse
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integration.sandbox import LoopbackERP


class Command(BaseCommand):
    help = "Serve a tiny ERP that records every POST and answers 200 {\"id\": \"ERP-<n>\"} (fail on demand)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8766)
        parser.add_argument("--latency-ms", type=int, default=0)
        parser.add_argument("--allow-production", action="store_true", help="start even when DEBUG is false")
        parser.add_argument("--run-seconds", type=float, default=None, help=argparse.SUPPRESS)  # smoke tests

    def handle(self, *args, **opts):
        if not settings.DEBUG and not opts["allow_production"]:
            raise CommandError("loopback_erp is a development tool and DEBUG is false; "
                               "pass --allow-production to start it anyway.")
        try:
            erp = LoopbackERP(port=opts["port"], latency_ms=opts["latency_ms"], host=opts["host"]).start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {opts['host']}:{opts['port']}: {exc}") from None
        self.stdout.write(f"Loopback ERP listening on {erp.url}  (records: GET {erp.url}/_erp/received)")
        self.stdout.flush()
        try:
            if opts["run_seconds"] is not None:
                time.sleep(opts["run_seconds"])
            else:
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            self.stdout.write("Stopping the loopback ERP.")
        finally:
            erp.stop()
