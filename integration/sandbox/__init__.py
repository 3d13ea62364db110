"""A stateful VTEX OMS sandbox (orders, feed v3, hook) that misbehaves on demand, and a loopback ERP.

Plain Python (no Django models, standard library HTTP only): a development and test tool.

    from integration.sandbox import Sandbox, SandboxServer, LoopbackERP
    sb = Sandbox(seed=1)
    sb.add_account("demostore", app_key="vtexappkey-demo-ABC", app_token="TOKEN")
    ids = sb.create_orders("vtexappkey-demo-ABC", 5)
    srv = SandboxServer(sb, port=0).start()   # srv.url
    ...
    srv.stop(); sb.close()

See ``state`` (model and Python API), ``server`` (HTTP and control API), ``faults`` (fault switches),
``orders`` (order invariants), ``feed`` (filters and queue) and ``erp`` (LoopbackERP).
"""
from .erp import LoopbackERP
from .faults import FaultSwitches
from .feed import DEFAULT_FEED_CONFIG
from .server import SandboxServer
from .state import CREATION_PATH, Account, ApiError, Sandbox

__all__ = ["Sandbox", "SandboxServer", "LoopbackERP", "FaultSwitches", "Account", "ApiError",
           "DEFAULT_FEED_CONFIG", "CREATION_PATH"]
