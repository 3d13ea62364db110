from tests.recording import bindings, feed, inline_dispatch, oms, recorder  # noqa: F401
