# The shared test fixtures (stores, fake VTEX, recording adapters, sandbox and loopback ERP) for every
# test directory of the checkout; pytest only accepts pytest_plugins in this top-level conftest.
pytest_plugins = ["tests.shared_fixtures"]
