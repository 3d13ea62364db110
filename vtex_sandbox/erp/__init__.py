"""The loopback ERP: records what an ERP adapter sends and fails on demand (``python -m vtex_sandbox.erp``)."""
from .loopback import Headers, LoopbackERP, LoopbackERPHandler

__all__ = ["LoopbackERP", "LoopbackERPHandler", "Headers"]
