"""Active and suspended services → ZOHO subscriptions on their package's plan, offline collection.

`reference_id` is the service id, so an ambiguous create is found again with `reference_contains`.
A service cancelled after it reached ZOHO cancels its subscription; one never synced is not created. Cancels,
reactivations and plan changes: subscription_lifecycle.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import String, cast, or_, select

from zoho_pipeline.source.tables import customer_services as t
from zoho_pipeline.source.tables import customers, service_packages
from zoho_pipeline.sync.entities import subscription_lifecycle as lifecycle
from zoho_pipeline.sync.entities.base import (
    Collection,
    EntitySpec,
    InvalidRow,
    Reconciliation,
    drift_fields,
    money,
    money_differs,
    public,
    sql_join,
    status_flag,
)

LIVE_STATUSES = ("active", "suspended")  # ZOHO keeps a suspended service's subscription live
# ZOHO's subscription statuses that reconciliation reads as live, and as ended
LIVE_LIKE = {"live", "trial", "future", "non_renewing", "unpaid", "dunning", "past_due"}
ENDED_LIKE = {"cancelled", "expired", "cancelled_from_dunning", "non_renewing", "trial_expired"}


def select_rows():
    return (
        select(
            t,
            service_packages.c.name.label("package_name"),
            service_packages.c.is_active.label("package_active"),
            customers.c.email.label("customer_email"),
            customers.c.status.label("customer_status"),
        )
        .outerjoin(service_packages, service_packages.c.id == t.c.package_id)
        .outerjoin(customers, customers.c.id == t.c.customer_id)
    )


def label(row) -> str:
    return f"{row.get('package_name') or 'unknown package'} for {row.get('customer_email') or row['customer_id']}"


def label_sql():
    p, cu = service_packages.alias("label_pkg"), customers.alias("label_cust")  # never auto-correlated
    pkg = select(p.c.name).where(p.c.id == t.c.package_id).correlate(t).scalar_subquery()
    email = select(cu.c.email).where(cu.c.id == t.c.customer_id).correlate(t).scalar_subquery()
    return sql_join(pkg, " for ", email)


def parents(row) -> list[tuple[str, str]]:
    return [("customers", str(row["customer_id"])), ("plans", str(row["package_id"]))]


def starts_on(activation: date) -> date:
    """The 1st after activation: ZOHO's terms then are the provider's calendar months, so each provider recurring
    invoice has one ZOHO twin (entities.recurring). The part month is the provider's own `pro_rata` invoice
    (pushed as a manual one), and the provider bills no recurring month its service started in."""
    return (activation.replace(day=1) + timedelta(days=32)).replace(day=1)


def build(row, ctx) -> dict:
    if row.get("package_name") is None:
        raise InvalidRow("package_id", f"package {row['package_id']} does not exist")
    customer = ctx.parent_zoho_id("customers", row["customer_id"])
    code = ctx.parent_zoho_id("plans", row["package_id"])
    price = money(row["monthly_price"], "monthly_price")
    if price < 0:
        raise InvalidRow("monthly_price", f"is negative ({price})")
    if row["activation_date"] is None and row["status"] in LIVE_STATUSES:
        raise InvalidRow("activation_date", f"is empty on a {row['status']} service")
    payload = {
        "customer_id": customer,
        "plan": {"plan_code": code, "price": float(price), "quantity": 1, "tax_id": ctx.catalog.tax_id()},
        "reference_id": str(row["id"]),
        "starts_at": starts_on(row["activation_date"]).isoformat() if row["activation_date"] else None,
        "auto_collect": False,  # the provider collects through NetCash itself
        # a closed account's services end with it (customer_lifecycle cancels them in ZOHO before the closure)
        "_cancelled": row["status"] not in LIVE_STATUSES or row.get("customer_status") == "closed",
    }
    return lifecycle.mark(payload, row)


def create(client, payload, row, ctx) -> str:
    if payload["_cancelled"]:
        raise InvalidRow("status", f"a {row['status']} service is not created in ZOHO")
    body = public(payload)
    return str(client.post("/subscriptions", json=body)["subscription"]["subscription_id"])


def update(client, zoho_id, payload, row, ctx) -> str | None:
    if payload["_cancelled"]:
        lifecycle.cancel(client, zoho_id, payload, row, ctx)
        return None
    return lifecycle.update(client, zoho_id, payload, row, ctx, create=_post, lookup=lookup)


def _post(client, body) -> str:
    return str(client.post("/subscriptions", json=body)["subscription"]["subscription_id"])


def lookup(client, payload, row, ctx) -> str | None:
    """Ours is the running subscription whose reference equals the service id (reference_contains matches
    substrings). An ended one is never adopted: a service that came back has a new subscription."""
    ref = payload["reference_id"]
    for found in client.iter_list("/subscriptions", "subscriptions", params={"reference_contains": ref}):
        if found.get("reference_id") == ref and (found.get("status") or "").lower() not in lifecycle.ENDED:
            return str(found["subscription_id"])
    return None


def compare(row, remote) -> list[tuple]:
    out = []
    plan = remote.get("plan") or {}
    code = plan.get("plan_code") or remote.get("plan_code")
    if row.get("plan_code") and code != row.get("plan_code"):
        out.append(("plan_code", row.get("plan_code"), code, ""))
    if "price" in plan:
        out += money_differs("price", row.get("monthly_price"), plan.get("price"), "excl. VAT")
    status, src = (remote.get("status") or "").lower(), row.get("status")
    if row.get("customer_status") == "closed" and src in LIVE_STATUSES:
        src = "cancelled"  # ended with its closed account
    if src in LIVE_STATUSES and status not in LIVE_LIKE:
        out.append(("status", src, status, "the service is live, the subscription is not"))
    elif src == "cancelled" and status not in ENDED_LIKE:
        out.append(("status", src, status, "the service is cancelled, the subscription is not"))
    return out


def _reconcile_columns():
    p = service_packages
    return (
        [
            t.c.status,
            t.c.monthly_price,
            p.c.zoho_plan_code.label("plan_code"),
            customers.c.status.label("customer_status"),
            cast(t.c.id, String).label("ref"),
        ],
        t.outerjoin(p, p.c.id == t.c.package_id).outerjoin(customers, customers.c.id == t.c.customer_id),
    )


RECONCILE = Reconciliation(
    collections=(
        Collection(
            "/subscriptions", "subscriptions", "subscription_id", "SubscriptionStatus.All", needs=("plan", "status")
        ),
    ),
    columns=_reconcile_columns,
    reference=lambda item: item.get("reference_id") or None,
    superseded=lambda item: (item.get("status") or "").lower() in lifecycle.ENDED,
    compare=compare,
    zoho_label=lambda item: (
        f"{item.get('name') or item.get('plan_code') or ''} for {item.get('email') or item.get('customer_id')}"
    ),
)

# what ZOHO's GET /subscriptions/{id} shows of our payload (the drift check): an ended service is a subscription
# ZOHO has cancelled or will not renew
DRIFT = (
    *drift_fields(
        "customer_id",
        "reference_id",
        "starts_at",
        "auto_collect",
        "plan.plan_code",
        "plan.quantity",
        "plan.tax_id",
        money=("plan.price",),
    ),
    status_flag("_cancelled", lambda status: status in ENDED_LIKE),
)


SPEC = EntitySpec(
    name="subscriptions",
    table=t,
    zoho_id_column="zoho_subscription_id",
    select=select_rows,
    eligible=lambda table: or_(table.c.status.in_(LIVE_STATUSES), table.c.zoho_subscription_id.is_not(None)),
    label=label,
    label_sql=label_sql,
    parents=parents,
    build=build,
    create=create,
    update=update,
    lookup=lookup,
    reconcile=RECONCILE,
    drift=DRIFT,
    aliases=("subscription", "customer_services", "services", "service"),
    natural_keys=("zoho_subscription_id",),
    calls=lifecycle.calls,
)
