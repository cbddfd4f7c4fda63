"""Service packages → one ZOHO plan each, on the 'Internet services' product. Inactive ones are marked inactive."""

from __future__ import annotations

from sqlalchemy import or_, select

from zoho_pipeline.source.tables import service_packages as t
from zoho_pipeline.sync.entities.base import (
    Collection,
    EntitySpec,
    InvalidRow,
    Reconciliation,
    drift_fields,
    money,
    money_differs,
    no_parents,
    public,
    sql_text,
    status_flag,
    text_differs,
)
from zoho_pipeline.zoho.errors import PERMANENT, ZohoError


def plan_code(package_id: str) -> str:
    """Stable for the package's life (never from its name, which may change): 'isp-' + 12 hex digits of its id."""
    return "isp-" + str(package_id).replace("-", "")[:12]


def label(row) -> str:
    return row["name"]


def build(row, ctx) -> dict:
    price = money(row["monthly_price"], "monthly_price")
    if price < 0:
        raise InvalidRow("monthly_price", f"is negative ({price})")
    name = (row["name"] or "").strip()
    if not name:
        raise InvalidRow("name", "is empty")
    return {
        "plan_code": row["zoho_plan_code"] or plan_code(row["id"]),
        "name": name[:100],
        "description": (row["description"] or "")[:2000],
        "recurring_price": float(price),
        "interval": 1,
        "interval_unit": "months",
        "billing_cycles": -1,
        "product_id": ctx.catalog.product_id("services"),
        "tax_id": ctx.catalog.tax_id(),
        "_active": bool(row["is_active"]),
    }


def _set_active(client, code: str, active: bool) -> None:
    client.post(f"/plans/{code}/{'markasactive' if active else 'markasinactive'}")


def create(client, payload, row, ctx) -> str:
    body = public(payload)
    client.post("/plans", json=body)
    if not payload["_active"]:
        _set_active(client, payload["plan_code"], False)
    return payload["plan_code"]


def calls(payload: dict, creating: bool) -> int:
    """The dry run's estimate: a create of a retired package (a prerequisite of a subscription on it) marks it
    inactive after; an update is one call (a (de)activation it may add is unknown offline)."""
    return 2 if creating and not payload["_active"] else 1


def update(client, zoho_id, payload, row, ctx) -> None:
    plan = client.put(f"/plans/{zoho_id}", json=public(payload, drop=("plan_code",)))["plan"]
    if (plan.get("status") == "active") != payload["_active"]:  # one call for a change; two only to (de)activate
        _set_active(client, zoho_id, payload["_active"])


def lookup(client, payload, row, ctx) -> str | None:
    try:
        return str(client.get(f"/plans/{payload['plan_code']}")["plan"]["plan_code"])
    except ZohoError as exc:
        if exc.kind == PERMANENT:  # 101002 Invalid PlanCode: not there
            return None
        raise


RECONCILE = Reconciliation(
    collections=(Collection("/plans", "plans", "plan_code", "PlanStatus.All", needs=("name", "recurring_price")),),
    columns=lambda: ([t.c.name, t.c.monthly_price, t.c.zoho_plan_code.label("ref")], t),
    reference=lambda item: item.get("plan_code") or None,
    compare=lambda row, remote: (
        text_differs("name", row.get("name"), remote.get("name"), limit=100)
        + money_differs("price", row.get("monthly_price"), remote.get("recurring_price"), "excl. VAT")
    ),
    zoho_label=lambda item: str(item.get("name") or item.get("plan_code")),
    duplicates=False,  # the plan code is ZOHO's id: it cannot be held twice
)

# what ZOHO's GET /plans/{code} shows of our payload (the drift check): the activation flag is ZOHO's status
DRIFT = (
    *drift_fields(
        "plan_code",
        "name",
        "description",
        "interval",
        "interval_unit",
        "billing_cycles",
        "product_id",
        "tax_id",
        money=("recurring_price",),
    ),
    status_flag("_active", lambda status: status == "active"),
)


SPEC = EntitySpec(
    name="plans",
    table=t,
    zoho_id_column="zoho_plan_code",
    select=lambda: select(t),
    # inactive packages never offered to ZOHO are left alone; those already there are marked inactive
    eligible=lambda table: or_(table.c.is_active.is_(True), table.c.zoho_plan_code.is_not(None)),
    label=label,
    label_sql=lambda: sql_text(t.c.name),
    parents=no_parents,
    build=build,
    create=create,
    update=update,
    lookup=lookup,
    calls=calls,
    reconcile=RECONCILE,
    drift=DRIFT,
    aliases=("plan", "service_packages", "products"),
    natural_keys=("zoho_plan_code", "name"),
    children=(("subscriptions", "package_id"),),
)
