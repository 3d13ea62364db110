"""Run the VTEX OMS sandbox (a development tool) on loopback until Ctrl-C."""
import argparse
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integration.sandbox import Sandbox, SandboxServer


class Command(BaseCommand):
    help = "Serve a stateful VTEX OMS stand-in (feed v3, hook, orders, fault injection) for development."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--account", default="demostore", help="VTEX account name of the sandbox store")
        parser.add_argument("--app-key", default="vtexappkey-demostore-SANDBOX")
        parser.add_argument("--app-token", default="sandbox-token-not-secret")
        parser.add_argument("--orders-per-minute", type=float, default=6.0, help="0 disables the generator")
        parser.add_argument("--initial-orders", type=int, default=5)
        parser.add_argument("--latency-ms", type=int, default=0, help="every VTEX call sleeps this long")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--allow-production", action="store_true", help="start even when DEBUG is false")
        parser.add_argument("--run-seconds", type=float, default=None, help=argparse.SUPPRESS)  # smoke tests

    def handle(self, *args, **opts):
        if not settings.DEBUG and not opts["allow_production"]:
            raise CommandError("vtex_sandbox is a development tool and DEBUG is false; "
                               "pass --allow-production to start it anyway.")
        sandbox = Sandbox(seed=opts["seed"])
        sandbox.add_account(opts["account"], app_key=opts["app_key"], app_token=opts["app_token"])
        sandbox.faults.update(latency_ms=opts["latency_ms"])
        if opts["initial_orders"]:
            sandbox.create_orders(opts["app_key"], opts["initial_orders"])
        try:
            server = SandboxServer(sandbox, host=opts["host"], port=opts["port"]).start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {opts['host']}:{opts['port']}: {exc}") from None
        if opts["orders_per_minute"] > 0:
            sandbox.start_generator(opts["app_key"], orders_per_minute=opts["orders_per_minute"])
        self.stdout.write(f"VTEX sandbox listening on {server.url}")
        self.stdout.write(f"  account {opts['account']}  app key {opts['app_key']}  app token {opts['app_token']}")
        self.stdout.write(f"  control API: {server.url}/_sandbox/stats  (faults: POST {server.url}/_sandbox/faults)")
        self.stdout.flush()
        try:
            if opts["run_seconds"] is not None:
                time.sleep(opts["run_seconds"])
            else:
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            self.stdout.write("Stopping the sandbox.")
        finally:
            server.stop()
            sandbox.close()
