"""The provider's first integration, as a baseline: for every row, search ZOHO for it, then create or update.

Two calls per entity, whatever the row's state: no memory of what was sent. It uses the project's ZohoClient and
the project's own mappings (`spec.build`), so only the call pattern differs from the engine's.
"""

from __future__ import annotations

from zoho_pipeline.sync.entities import SPECS
from zoho_pipeline.sync.entities.base import InvalidRow, ParentNotReady, public
from zoho_pipeline.sync.catalog import PRODUCTS, VAT_PERCENT
from zoho_pipeline.zoho.errors import ZohoError


class NaiveCatalog:
    def __init__(self, client):
        self.client, self._tax, self._products = client, None, {}

    def tax_id(self):
        if self._tax is None:
            taxes = self.client.get("/settings/taxes").get("taxes", [])
            self._tax = next(str(t["tax_id"]) for t in taxes if float(t.get("tax_percentage") or 0) == VAT_PERCENT)
        return self._tax

    def product_id(self, key):
        if key not in self._products:
            name, description = PRODUCTS[key]
            found = [p for p in self.client.iter_list("/products", "products") if p.get("name") == name]
            self._products[key] = str(found[0]["product_id"]) if found else str(
                self.client.post("/products", json={"name": name, "description": description})["product"]["product_id"])
        return self._products[key]


class NaiveContext:
    def __init__(self, catalog, ids):
        self.catalog, self._ids = catalog, ids

    def parent_zoho_id(self, entity, source_id):
        zoho_id = self._ids.get((entity, str(source_id)))
        if not zoho_id:
            raise ParentNotReady(f"{entity} {source_id} not in ZOHO")
        return zoho_id

    def remember_zoho_id(self, zoho_id):
        pass


# entity -> (search(client, payload) -> zoho id or None, create path, update path template, id key in response)
def _search_plan(client, payload):
    try:
        return str(client.get(f"/plans/{payload['plan_code']}")["plan"]["plan_code"])
    except ZohoError:
        return None


def _search_list(path, key, param, id_key, payload_key):
    def search(client, payload):
        found = client.get(path, params={param: payload[payload_key]}).get(key) or []
        return str(found[0][id_key]) if found else None
    return search


NAIVE = {
    "plans": (_search_plan, "/plans", "/plans/{id}", "plan", "plan_code"),
    "customers": (_search_list("/customers", "customers", "email", "customer_id", "email"),
                  "/customers", "/customers/{id}", "customer", "customer_id"),
    "subscriptions": (_search_list("/subscriptions", "subscriptions", "reference_id", "subscription_id", "reference_id"),
                      "/subscriptions", "/subscriptions/{id}", "subscription", "subscription_id"),
    "invoices": (_search_list("/invoices", "invoices", "reference_number", "invoice_id", "reference_number"),
                 "/invoices", "/invoices/{id}", "invoice", "invoice_id"),
    "payments": (_search_list("/payments", "payments", "reference_number", "payment_id", "reference_number"),
                 "/payments", "/payments/{id}", "payment", "payment_id"),
}
_UPDATE_DROPS = {"plans": ("plan_code",), "subscriptions": ("customer_id", "starts_at")}


class NaiveSync:
    """Keeps the (entity, source id) -> ZOHO id map of what it created, only so children can name parents."""

    def __init__(self, client):
        self.client = client
        self.ids: dict[tuple[str, str], str] = {}
        self.ctx = NaiveContext(NaiveCatalog(client), self.ids)

    def warm(self) -> int:
        """Resolve the tax and the products once, as the engine's catalog does; returns the calls spent."""
        before = self.client.stats.api_calls
        self.ctx.catalog.tax_id()
        for key in PRODUCTS:
            self.ctx.catalog.product_id(key)
        return self.client.stats.api_calls - before

    def push(self, entity: str, rows: list[dict]) -> dict:
        """Search then create or update every row; returns calls, created, updated, skipped, errors."""
        search, create_path, update_path, key, id_key = NAIVE[entity]
        spec = SPECS[entity]
        before = self.client.stats.api_calls
        out = dict(rows=len(rows), created=0, updated=0, skipped=0, errors=0)
        for row in rows:
            try:
                payload = spec.build(row, self.ctx)
            except (InvalidRow, ParentNotReady):
                out["skipped"] += 1
                continue
            body = public(payload)
            try:
                found = search(self.client, payload)
                if found:
                    body = {k: v for k, v in body.items() if k not in _UPDATE_DROPS.get(entity, ())}
                    self.client.put(update_path.format(id=found), json=body)
                    zoho_id = found
                    out["updated"] += 1
                else:
                    zoho_id = str(self.client.post(create_path, json=body)[key][id_key])
                    out["created"] += 1
                self.ids[(entity, str(row["id"]))] = zoho_id
            except ZohoError:
                out["errors"] += 1
        out["api_calls"] = self.client.stats.api_calls - before
        return out
