"""Command lines: ``python -m vtex_sandbox`` (the sandbox) and ``python -m vtex_sandbox.erp`` (the loopback ERP).

Both serve on loopback by default, print ``... listening on <url>`` once they accept connections,
and stop cleanly on Ctrl-C or SIGTERM (the sandbox then writes its state file one last time).
"""
import argparse
import signal
import sys
import threading

from .erp import LoopbackERP
from .order_kinds import ORDER_KINDS
from .persistence import StateFileError
from .server import SandboxServer
from .state import Sandbox


def _wait_for_signal():
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def _kinds(text):
    kinds = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [kind for kind in kinds if kind not in ORDER_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown order kind {', '.join(unknown) or '(none)'}: "
                                         f"choose from {', '.join(ORDER_KINDS)}")
    return kinds


def sandbox_parser():
    parser = argparse.ArgumentParser(
        prog="python -m vtex_sandbox",
        description="Serve a stateful stand-in for VTEX's Orders API (orders, feed v3, hook, fault injection).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765; 0 picks a free one)")
    parser.add_argument("--account", default="demostore", help="VTEX account name of the first store (default demostore)")
    parser.add_argument("--app-key", default="vtexappkey-demostore-SANDBOX", help="app key of the first store")
    parser.add_argument("--app-token", default="sandbox-token-not-secret", help="app token of the first store")
    parser.add_argument("--orders-per-minute", type=float, default=6.0,
                        help="new orders a minute for the first store (default 6; 0 disables the generator)")
    parser.add_argument("--initial-orders", type=int, default=5,
                        help="orders created at start when the first store has none yet (default 5)")
    parser.add_argument("--kinds", default="plain", type=_kinds, metavar="KIND[,KIND...]",
                        help="kinds of the orders made at start and by the generator, taken in turn (default plain; "
                             f"of {', '.join(ORDER_KINDS)})")
    parser.add_argument("--latency-ms", type=int, default=0, help="every VTEX call sleeps this long (default 0)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the order generator (reproducible orders)")
    parser.add_argument("--state-file", default=None, metavar="PATH",
                        help="keep stores, orders, feeds and hooks in this JSON file across restarts")
    return parser


def sandbox_main(argv=None):
    opts = sandbox_parser().parse_args(argv)
    try:
        sandbox = Sandbox(seed=opts.seed, state_file=opts.state_file)
    except StateFileError as exc:
        print(f"vtex_sandbox: error: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            sandbox.add_account(opts.account, app_key=opts.app_key, app_token=opts.app_token)
        except ValueError as exc:
            print(f"vtex_sandbox: error: {exc}", file=sys.stderr)
            return 2
        sandbox.faults.update(latency_ms=opts.latency_ms)
        if opts.initial_orders and not sandbox.orders(opts.app_key):
            for turn in range(opts.initial_orders):
                sandbox.create_orders(opts.app_key, 1, kind=opts.kinds[turn % len(opts.kinds)])
        try:
            server = SandboxServer(sandbox, host=opts.host, port=opts.port).start()
        except OSError as exc:
            print(f"vtex_sandbox: error: cannot listen on {opts.host}:{opts.port}: {exc}", file=sys.stderr)
            return 1
        if opts.orders_per_minute > 0:
            sandbox.start_generator(opts.app_key, orders_per_minute=opts.orders_per_minute, kinds=opts.kinds)
        print(f"VTEX sandbox listening on {server.url}")
        print(f"  account {opts.account}  app key {opts.app_key}  app token {opts.app_token}")
        if opts.state_file:
            stores = len({a.name for a in sandbox.accounts()})
            orders = len(sandbox.stats()["statuses"])
            how = "restored from" if sandbox.restored else "kept in"
            print(f"  state {how} {opts.state_file}: {stores} store(s), {orders} order(s)")
        print(f"  control API: {server.url}/_sandbox/stats  (faults: POST {server.url}/_sandbox/faults)", flush=True)
        try:
            _wait_for_signal()
        finally:
            print("Stopping the sandbox.", flush=True)
            server.stop()
    finally:
        sandbox.close()
    return 0


def erp_parser():
    parser = argparse.ArgumentParser(
        prog="python -m vtex_sandbox.erp",
        description="Serve a tiny ERP that records every POST/PUT/PATCH and answers 200 {\"id\": \"ERP-<n>\"} "
                    "(fails on demand).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8766, help="port to listen on (default 8766; 0 picks a free one)")
    parser.add_argument("--latency-ms", type=int, default=0, help="every request sleeps this long (default 0)")
    return parser


def erp_main(argv=None):
    opts = erp_parser().parse_args(argv)
    try:
        erp = LoopbackERP(port=opts.port, latency_ms=opts.latency_ms, host=opts.host).start()
    except OSError as exc:
        print(f"vtex_sandbox.erp: error: cannot listen on {opts.host}:{opts.port}: {exc}", file=sys.stderr)
        return 1
    print(f"Loopback ERP listening on {erp.url}  (records: GET {erp.url}/_erp/received)", flush=True)
    try:
        _wait_for_signal()
    finally:
        print("Stopping the loopback ERP.", flush=True)
        erp.stop()
    return 0
