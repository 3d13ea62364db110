"""The inbound API for ERPs: VTEX's own paths for invoices, tracking and cancellations, served by
the hub under /erp-api/{store}/, so a connector that speaks VTEX's OMS API changes only its base
URL and credentials. Validation and the OpenAPI document come from django-ninja and the pydantic
models of integration.update_bodies."""
