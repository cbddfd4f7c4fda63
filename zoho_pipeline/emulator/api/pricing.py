"""A subscription's priced parts: the plan line, addons, amounts and tax, and the customer block it embeds."""

from __future__ import annotations

from decimal import Decimal

from ..errors import bad
from .common import Ctx, cents, dec, num, qty, tax_of, text


def customer_block(customer: dict) -> dict:
    keys = (
        "customer_id",
        "display_name",
        "company_name",
        "first_name",
        "last_name",
        "email",
        "website",
        "zcrm_account_id",
        "zcrm_contact_id",
        "billing_address",
        "shipping_address",
        "payment_terms",
        "payment_terms_label",
    )
    return {k: customer.get(k, "") for k in keys}


def price(ctx: Ctx, sub: dict, plan_body: dict, addons_body) -> None:
    """(Re)compute the plan line, addons and amounts from a request's plan and addons."""
    code = str(plan_body.get("plan_code") or sub.get("plan", {}).get("plan_code") or "")
    plan = ctx.store.plans.get(code)
    if plan is None:
        raise bad(101002, "Invalid PlanCode.")
    old = sub.get("plan", {}) if sub.get("plan", {}).get("plan_code") == code else {}
    price = dec(plan_body.get("price", old.get("price", plan["recurring_price"])), "price")
    quantity = qty(plan_body.get("quantity", old.get("quantity", 1)) or 1)
    tax = tax_of(ctx, plan_body.get("tax_id", old.get("tax_id", plan.get("tax_id"))))
    total = cents(price * dec(quantity, "quantity"))
    line = {
        "plan_code": code,
        "name": plan["name"],
        "description": text(plan_body, "plan_description", plan["description"]),
        "price": num(price),
        "quantity": quantity,
        "discount": 0.0,
        "total": num(total),
        "setup_fee": 0.0,
        "tax_id": tax["tax_id"] if tax else "",
        "tax_name": tax["tax_name"] if tax else "",
        "tax_percentage": tax["tax_percentage"] if tax else "",
        "tax_type": tax["tax_type"] if tax else "",
        "setup_fee_tax_id": "",
        "setup_fee_tax_name": "",
        "setup_fee_tax_percentage": "",
        "setup_fee_tax_type": "",
    }
    taxes: dict[str, Decimal] = {}
    if tax:
        taxes[tax["tax_name"]] = cents(total * Decimal(str(tax["tax_percentage"])) / 100)
    addons = sub.get("addons", []) if addons_body is None else []
    for item in addons_body or []:
        if not isinstance(item, dict) or not item.get("addon_code"):
            continue
        addon = ctx.store.addons.get(str(item["addon_code"]))
        if addon is None:
            raise bad(102001, "Invalid AddonCode.")
        a_price = dec(item.get("price", addon["price_brackets"][0]["price"]), "price")
        a_qty = qty(item.get("quantity") or 1)
        addons.append(
            {
                "addon_code": addon["addon_code"],
                "name": addon["name"],
                "description": text(item, "addon_description", addon["description"]),
                "price": num(a_price),
                "quantity": a_qty,
                "total": num(cents(a_price * dec(a_qty, "quantity"))),
                "tax_id": "",
                "type": addon["type"],
            }
        )
    sub_total = total + sum((Decimal(str(a["total"])) for a in addons), Decimal(0))
    sub.update(
        plan=line,
        addons=addons,
        sub_total=num(sub_total),
        amount=num(sub_total),
        taxes=[{"tax_name": k, "tax_amount": num(v)} for k, v in taxes.items()],
        name=f"{ctx.store.products.get(plan['product_id'], {}).get('name', '')}-{plan['name']}",
        product_id=plan["product_id"],
        product_name=ctx.store.products.get(plan["product_id"], {}).get("name", ""),
        interval=plan["interval"],
        interval_unit=plan["interval_unit"],
    )
