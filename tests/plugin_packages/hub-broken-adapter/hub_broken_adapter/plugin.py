"""A plugin that fails on import, to prove one broken plugin never stops the others."""
raise RuntimeError("hub-broken-adapter fails on import on purpose (test fixture)")
