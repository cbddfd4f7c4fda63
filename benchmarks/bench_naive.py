"""The provider's first integration, as a baseline: for every row, search ZOHO for it, then create or update.

Two calls per entity, whatever the row's state: no memory of what was sent. It uses the project's ZohoClient, the
project's catalog and the project's own mappings and writes (`spec.build`, `spec.create`, `spec.update`), so only
the call pattern differs from the engine's: one search before every write.
"""

from __future__ import annotations

import uuid

from zoho_pipeline.sync import catalog as catalog_mod
from zoho_pipeline.sync.entities import SPECS
from zoho_pipeline.sync.entities.base import InvalidRow, ParentNotReady, Waiting
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.zoho.errors import ZohoError


class NaiveContext:
    def __init__(self, catalog, ids):
        self.catalog, self._ids = catalog, ids
        self.adopted = False
        self.new_zoho_id = None
        self.in_doubt = False
        self.settings = SyncSettings()  # the lifecycle policies at their defaults

    def previous_payload(self) -> dict:
        """The naive integration keeps nothing of what it sent: every field (the plan included) counts as changed,
        so it writes each row whole, as the provider's first integration did (no read beyond its search)."""
        return {}

    def parent_zoho_id(self, entity, source_id):
        zoho_id = self._ids.get((entity, str(source_id)))
        if not zoho_id:
            raise ParentNotReady(f"{entity} {source_id} not in ZOHO")
        return zoho_id

    def remember_zoho_id(self, zoho_id):
        self.new_zoho_id = zoho_id


def _search_plan(client, payload):
    try:
        return str(client.get(f"/plans/{payload['plan_code']}")["plan"]["plan_code"])
    except ZohoError:
        return None


def _search(path, key, param, id_key, payload_key):
    def search(client, payload):
        found = client.get(path, params={param: payload[payload_key]}).get(key) or []
        return str(found[0][id_key]) if found else None

    return search


def _search_invoice(client, payload):
    kind = payload.get("_kind", "invoice")
    return _search(f"/{kind}s", f"{kind}s", "reference_number", f"{kind}_id", "reference_number")(client, payload)


SEARCH = {
    "plans": _search_plan,
    "customers": _search("/customers", "customers", "email", "customer_id", "email"),
    "subscriptions": _search("/subscriptions", "subscriptions", "reference_id", "subscription_id", "reference_id"),
    "invoices": _search_invoice,
    "payments": _search("/payments", "payments", "reference_number", "payment_id", "reference_number"),
}


class NaiveSync:
    """Keeps the (entity, source id) -> ZOHO id map of what it wrote, only so children can name their parents."""

    def __init__(self, engine, client):
        self.client = client
        self.ids: dict[tuple[str, str], str] = {}
        # the project's catalog under a key of its own: nothing cached from the engine's run is reused
        self.catalog = catalog_mod.Catalog(engine, client, f"naive-{uuid.uuid4().hex[:8]}")

    def warm(self) -> int:
        """Resolve the tax, products and addons once, as the engine's catalog does; returns the calls spent."""
        before = self.client.stats.api_calls
        self.catalog.tax_id()
        for key in catalog_mod.PRODUCTS:
            self.catalog.product_id(key)
        for code in getattr(catalog_mod, "ADDONS", {}):
            self.catalog.addon_code(code)
        return self.client.stats.api_calls - before

    def push(self, entity: str, rows: list[dict]) -> dict:
        """Search then create or update every row; returns calls, created, updated, skipped, errors."""
        spec = SPECS[entity]
        before = self.client.stats.api_calls
        out = dict(rows=len(rows), created=0, updated=0, skipped=0, errors=0)
        for row in rows:
            ctx = NaiveContext(self.catalog, self.ids)
            try:
                payload = spec.build(row, ctx)
            except (InvalidRow, ParentNotReady, Waiting):  # waiting (a recurring invoice's link): not pushed yet
                out["skipped"] += 1
                continue
            try:
                found = SEARCH[entity](self.client, payload)
                if found:
                    spec.update(self.client, found, payload, row, ctx)
                    zoho_id = found
                    out["updated"] += 1
                else:
                    zoho_id = spec.create(self.client, payload, row, ctx)
                    out["created"] += 1
                self.ids[(entity, str(row["id"]))] = zoho_id
            except (ZohoError, InvalidRow):
                out["errors"] += 1
        out["api_calls"] = self.client.stats.api_calls - before
        return out
