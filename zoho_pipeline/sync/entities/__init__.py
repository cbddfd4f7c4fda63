"""One module per entity: how to select its rows, map one to a ZOHO payload, its parents, and its look-up."""

from zoho_pipeline.sync.entities import customers, invoices, payments, plans, subscriptions
from zoho_pipeline.sync.entities.base import EntitySpec

SPECS: dict[str, EntitySpec] = {
    m.SPEC.name: m.SPEC for m in (plans, customers, subscriptions, invoices, payments)
}
