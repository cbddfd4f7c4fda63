"""The emulator answers in ZOHO's shapes: every recorded real response, and every OpenAPI request example."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from zoho_pipeline_tests.emulator.test_emulator import VAT, Api

SHARED = Path(__file__).resolve().parents[3] / "shared"
if not SHARED.exists():
    SHARED = Path("/work/shared")
RECORDED = SHARED / "zoho-billing-recorded"
OPENAPI = SHARED / "zoho-billing-openapi"
RECORDED_FILES = sorted(str(p.relative_to(RECORDED)) for p in RECORDED.rglob("*.json"))
NAME = re.compile(r"^(?P<path>.+)-(?P<method>get|post|put|delete)-(?P<status>\d{3})(?:-(?P<variant>[\w-]+))?\.json$")
SKIPPED: dict[str, str] = {}  # recorded file -> why it cannot apply (none so far)

# one valid create body per collection; {product_id} filled in at run time
CREATE = {
    "products": lambda ids, n: {"name": f"Product {n}"},
    "plans": lambda ids, n: {
        "plan_code": f"plan-{n}",
        "name": f"Plan {n}",
        "recurring_price": 99.99,
        "interval": 1,
        "product_id": ids["product_id"],
    },
    "addons": lambda ids, n: {
        "addon_code": f"addon-{n}",
        "name": f"Addon {n}",
        "product_id": ids["product_id"],
        "type": "recurring",
        "price_brackets": [{"price": 9.99}],
    },
    "customers": lambda ids, n: {"display_name": f"Customer {n}", "email": f"c{n}@example.com"},
    "subscriptions": lambda ids, n: {
        "customer_id": ids["customer_id"],
        "plan": {"plan_code": ids["plan_code"]},
        "reference_id": f"ref-{n}",
        "starts_at": "2024-01-01",
        "auto_collect": False,
    },
}
UPDATE = {
    "products": {"name": "Renamed"},
    "plans": {"name": "Renamed"},
    "addons": {"name": "Renamed"},
    "customers": {"display_name": "Renamed"},
    "subscriptions": {"plan": {"quantity": 10}},
}
ENTITY_KEY = {
    "products": ("product", "product_id"),
    "plans": ("plan", "plan_code"),
    "addons": ("addon", "addon_code"),
    "customers": ("customer", "customer_id"),
    "subscriptions": ("subscription", "subscription_id"),
}


class World:
    """Entities the recorded calls need, created through the API."""

    def __init__(self, api: Api):
        self.api, self.n = api, 0
        self.ids = {}
        self.ids["product_id"] = self.create("products")["product_id"]
        self.ids["plan_code"] = self.create("plans")["plan_code"]
        self.ids["customer_id"] = self.create("customers")["customer_id"]

    def create(self, collection: str) -> dict:
        self.n += 1
        key = ENTITY_KEY[collection][0]
        return self.api.ok("POST", f"/{collection}", CREATE[collection](self.ids, self.n))[key]

    def existing(self, collection: str) -> str:
        return self.create(collection)[ENTITY_KEY[collection][1]]

    def gone(self, collection: str) -> str:
        ident = self.existing(collection)
        self.api.ok("DELETE", f"/{collection}/{ident}")
        return ident


def plan_call(name: str, world: World):
    """Derive (method, path, body, expected status) for a recorded file name."""
    m = NAME.match(Path(name).name)
    assert m, f"recorded file name not understood: {name}"
    method, status = m["method"].upper(), int(m["status"])
    parts = [*Path(name).parent.parts, m["path"]] if Path(name).parent.parts else [m["path"]]
    collection = parts[0]
    if len(parts) == 1:
        body = CREATE[collection](world.ids, world.n + 1000) if method == "POST" else None
        if method == "POST":
            world.n += 1
        return method, f"/{collection}", body, status
    if len(parts) == 2:
        recorded_id = parts[1]
        if status >= 400:
            ident = "0" if recorded_id == "0" else world.gone(collection)
        else:
            ident = world.existing(collection)
        body = copy.deepcopy(UPDATE[collection]) if method == "PUT" else None
        if collection == "subscriptions" and body:
            body["plan"]["plan_code"] = world.ids["plan_code"]
        return method, f"/{collection}/{ident}", body, status
    if len(parts) == 3 and collection == "subscriptions":
        return method, f"/subscriptions/{world.existing('subscriptions')}/{parts[2]}", None, status
    raise AssertionError(f"no emulator call derived for recorded file {name}")


def kind(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def assert_same_shape(recorded, got, where="$"):
    if recorded is None:
        return
    assert kind(got) == kind(recorded), f"{where}: recorded {kind(recorded)} {recorded!r}, emulator {got!r}"
    if isinstance(recorded, dict):
        for key, value in recorded.items():
            if value is None:
                continue
            assert key in got, f"{where}: key {key!r} missing (emulator keys: {sorted(got)})"
            assert_same_shape(value, got[key], f"{where}.{key}")
    elif isinstance(recorded, list) and recorded and got:
        assert_same_shape(recorded[0], got[0], f"{where}[0]")


def test_every_recorded_file_is_covered():
    assert len(RECORDED_FILES) >= 40
    for name in RECORDED_FILES:
        if name in SKIPPED:
            continue
        m = NAME.match(Path(name).name)
        assert m, name
        parts = [*Path(name).parent.parts, m["path"]]
        assert parts[0] in CREATE or parts == ["organizations"], f"recorded file not covered: {name}"


@pytest.mark.parametrize("name", [n for n in RECORDED_FILES if n not in SKIPPED])
def test_recorded_shape(emulator, name):
    recorded = json.loads((RECORDED / name).read_text())
    api = Api(emulator)
    if name.startswith("organizations"):
        method, path, body, status = "GET", "/organizations", None, 200
    else:
        world = World(api)
        method, path, body, status = plan_call(name, world)
        if method == "GET" and path in ("/plans", "/addons", "/customers", "/subscriptions", "/products"):
            if path == "/subscriptions":
                world.existing("subscriptions")
            if path == "/addons":
                world.existing("addons")
    got_status, got = api.call(method, path, body)
    expected_status = 201 if status == 201 else status
    assert got_status == expected_status, (name, got_status, got)
    assert got["code"] == recorded["code"], (name, got)
    if recorded["code"] != 0:
        assert got["message"] == recorded["message"]
    assert_same_shape(recorded, got)


# OpenAPI request examples -------------------------------------------------------------------------------------------


def _resolve(doc, schema, depth=0):
    if depth > 12 or schema is None:
        return None
    if "$ref" in schema:
        return _resolve(doc, doc["components"]["schemas"][schema["$ref"].split("/")[-1]], depth + 1)
    if "example" in schema and schema.get("type") not in ("object", "array"):
        return schema["example"]
    if schema.get("type") == "array" or "items" in schema:
        return schema["example"] if "example" in schema else [_resolve(doc, schema["items"], depth + 1)]
    if schema.get("type") == "object" or "properties" in schema:
        return {k: _resolve(doc, v, depth + 1) for k, v in (schema.get("properties") or {}).items()}
    return schema.get("example")


def openapi_example(spec: str, path: str) -> dict:
    doc = yaml.safe_load((OPENAPI / f"{spec}.yml").read_text())
    schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return _resolve(doc, schema)


def test_openapi_request_examples_are_accepted(emulator):
    api = Api(emulator)
    product = api.call("POST", "/products", openapi_example("products", "/products"))
    assert product[0] == 201, product
    pid = product[1]["product"]["product_id"]

    plan_body = openapi_example("plans", "/plans")
    plan_body.update(product_id=pid, tax_id=VAT)
    status, plan = api.call("POST", "/plans", plan_body)
    assert status == 201, plan

    customer_body = openapi_example("customers", "/customers")
    status, customer = api.call("POST", "/customers", customer_body)
    assert status == 201, customer
    cid = customer["customer"]["customer_id"]
    assert customer["customer"]["email"] == customer_body["email"]

    api.ok(
        "POST",
        "/addons",
        {"addon_code": "Email-basic", "name": "Email", "product_id": pid, "price_brackets": [{"price": 50}]},
    )
    sub_body = openapi_example("subscription", "/subscriptions")
    assert sub_body["plan"]["plan_code"] == plan["plan"]["plan_code"]
    status, sub = api.call("POST", "/subscriptions", sub_body)  # customer given inline, as in the example
    assert status == 201, sub
    sub_body.update(customer_id=cid)
    sub_body.pop("customer")
    status, sub = api.call("POST", "/subscriptions", sub_body)
    assert status == 201 and sub["subscription"]["customer_id"] == cid, sub

    invoice_body = openapi_example("invoices", "/invoices")
    invoice_body["customer_id"] = cid
    for item in invoice_body["invoice_items"]:
        item.update(product_id=pid, tax_id=VAT)
    status, invoice = api.call("POST", "/invoices", invoice_body)
    assert status == 201, invoice
    assert invoice["invoice"]["total"] == 57.5  # 50 + 15% VAT, whatever the example's own totals say

    big = api.ok(
        "POST", "/invoices", {**invoice_body, "invoice_items": [{"product_id": pid, "price": 1000, "quantity": 1}]}
    )["invoice"]
    payment_body = openapi_example("payments", "/payments")
    payment_body["customer_id"] = cid
    payment_body["invoices"][0]["invoice_id"] = big["invoice_id"]
    status, payment = api.call("POST", "/payments", payment_body)
    assert status == 201, payment
    assert api.ok("GET", f"/invoices/{big['invoice_id']}")["invoice"]["balance"] == 550.0
