"""Built-in plugin: write each order as a JSON file into a directory an ERP/WMS picks up."""
from erp_plugins.file_drop.adapter import FileDropAdapter
from integration.plugins import hookimpl


@hookimpl
def erp_adapters():
    return [FileDropAdapter]
