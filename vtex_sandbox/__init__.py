"""A local stand-in for VTEX's Orders API (orders, feed v3, hook) that misbehaves on demand, and a loopback ERP.

Plain Python (standard-library HTTP, no Django; ``jsonata-python`` for FromOrders filters): a development and test tool
for anyone who integrates with VTEX. Start it with ``python -m vtex_sandbox`` (README.md in this
directory: options and the ``/_sandbox/...`` control API) or use it from Python:

    from vtex_sandbox import Sandbox, SandboxServer, LoopbackERP
    sb = Sandbox(seed=1)                     # Sandbox(state_file="state.json") keeps it across restarts
    sb.add_account("demostore", app_key="vtexappkey-demo-ABC", app_token="TOKEN")
    ids = sb.create_orders("vtexappkey-demo-ABC", 5)
    srv = SandboxServer(sb, port=0).start()   # srv.url
    ...
    srv.stop(); sb.close()

See ``state`` (model and Python API), ``server`` (HTTP and control API), ``faults`` (fault switches),
``orders`` (order invariants), ``feed`` (filters and queue), ``persistence`` (the state file) and
``erp`` (LoopbackERP).
"""
from .erp import LoopbackERP
from .faults import FaultSwitches
from .feed import DEFAULT_FEED_CONFIG
from .persistence import StateFileError
from .server import SandboxServer
from .state import CREATION_PATH, Account, ApiError, Sandbox

__all__ = ["Sandbox", "SandboxServer", "LoopbackERP", "FaultSwitches", "Account", "ApiError",
           "DEFAULT_FEED_CONFIG", "CREATION_PATH", "StateFileError"]
