"""Built-in ERP/WMS adapters. Each sub-package is a plugin registered through the same hooks as
third-party ones (see integration/plugins/manager.py and docs/developers/adapter-plugins.md)."""
