"""Organizations, taxes, products, plans and addons."""

from __future__ import annotations

from ..errors import ApiError, bad
from .common import Ctx, created, dec, num, ok, page, require, stored, tax_of, text, with_status

# organization ---------------------------------------------------------------------------------------------------


def list_organizations(ctx: Ctx):
    org = {
        "organization_id": ctx.config.organization_id,
        "name": "Emulated ISP",
        "contact_name": "Billing Team",
        "email": "billing@example.com",
        "is_default_org": True,
        "source": 2,
        "country": "South Africa",
        "org_settings": True,
        "is_ziedition": False,
        "is_zbclient": False,
        "custom_field_type": 1,
        "version": "global",
        "is_moss_enabled": False,
        "is_sales_inclusive_tax_enabled": False,
        "plan_type": 0,
        "tax_group_enabled": True,
        "plan_name": "EMULATOR",
        "plan_period": "",
        "language_code": "en",
        "fiscal_year_start_month": 0,
        "account_created_date": "2024-01-01",
        "account_created_date_formatted": "01/01/24",
        "time_zone": "Africa/Johannesburg",
        "field_separator": "/",
        "time_zone_formatted": "( GMT 2:00 ) South Africa Standard Time(Africa/Johannesburg)",
        "is_org_active": True,
        "mode": "test",
        "is_quick_setup_completed": True,
        "is_trial_period_extended": False,
        "currency_id": "187955000000000097",
        "currency_code": "ZAR",
        "currency_symbol": "R",
        "currency_format": "###,##0.00",
        "price_precision": 2,
        "badge_count": 0,
    }
    return ok("success", organizations=[org])


def list_taxes(ctx: Ctx):
    return ok("success", taxes=list(ctx.store.taxes.values()))


def _marker(find, noun: str, status: str):
    """The handler of POST /<kind>/<id>/markasactive | markasinactive."""

    def mark(ctx: Ctx):
        find(ctx).update(status=status, updated_time=ctx.timestamp())
        return ok(f"The {noun} has been marked as {status}.")

    return mark


# products -------------------------------------------------------------------------------------------------------


def _product(ctx: Ctx) -> dict:
    return stored(ctx.store.products, ctx.params["product_id"], bad, 2006, "Invalid Product ID.")


def _known_product_id(ctx: Ctx, value) -> str:
    """A plan's or addon's product_id, checked against the stored products."""
    stored(ctx.store.products, str(value), bad, 2006, "Invalid Product ID.")
    return str(value)


def create_product(ctx: Ctx):
    require(ctx.body, "name")
    now, pid = ctx.timestamp(), ctx.store.new_id()
    product = {
        "product_id": pid,
        "name": text(ctx.body, "name"),
        "description": text(ctx.body, "description"),
        "status": "active",
        "redirect_url": text(ctx.body, "redirect_url"),
        "email_ids": text(ctx.body, "email_ids"),
        "created_time": now,
        "updated_time": now,
    }
    ctx.store.products[pid] = product
    return created("The product has been added.", product=product)


def list_products(ctx: Ctx):
    flt = ctx.query.get("filter_by", "ProductStatus.All")
    items = with_status(list(ctx.store.products.values()), flt)
    return page(ctx, items, "products", flt)


def get_product(ctx: Ctx):
    return ok("success", product=_product(ctx))


def update_product(ctx: Ctx):
    product = _product(ctx)
    for key in ("name", "description", "redirect_url", "email_ids"):
        if key in ctx.body:
            product[key] = text(ctx.body, key)
    if not product["name"]:
        raise bad(4, "Please enter name. name is mandatory.")
    product["updated_time"] = ctx.timestamp()
    return ok("The product details have been updated.", product=product)


def delete_product(ctx: Ctx):
    product = _product(ctx)
    if any(p["product_id"] == product["product_id"] for p in ctx.store.plans.values()):
        raise bad(2007, "The product cannot be deleted as it has plans associated with it.")
    del ctx.store.products[product["product_id"]]
    return ok("The product has been deleted.")


product_active = _marker(_product, "product", "active")


product_inactive = _marker(_product, "product", "inactive")


# plans ----------------------------------------------------------------------------------------------------------


def _plan(ctx: Ctx) -> dict:
    return stored(ctx.store.plans, ctx.params["plan_code"], bad, 101002, "Invalid PlanCode.")


def _apply_tax(ctx: Ctx, entity: dict, tax_id) -> None:
    tax = tax_of(ctx, tax_id)
    entity.update(
        tax_id=tax["tax_id"] if tax else "",
        tax_name=tax["tax_name"] if tax else "",
        tax_percentage=tax["tax_percentage"] if tax else 0,
        tax_type=tax["tax_type"] if tax else "",
    )


def _plan_fields(ctx: Ctx, plan: dict, body: dict) -> None:
    if "product_id" in body:
        plan["product_id"] = _known_product_id(ctx, body["product_id"])
    for key in ("name", "description"):
        if key in body:
            plan[key] = text(body, key)
    if "recurring_price" in body:
        plan["recurring_price"] = num(dec(body["recurring_price"], "recurring_price"))
    if "setup_fee" in body:
        plan["setup_fee"] = num(dec(body["setup_fee"] or 0, "setup_fee"))
    for key in ("interval", "billing_cycles", "trial_period"):
        if body.get(key) is not None:
            try:
                plan[key] = int(body[key])
            except (TypeError, ValueError):
                raise bad(4, f"Invalid value passed for {key}") from None
    if body.get("interval_unit"):
        if body["interval_unit"] not in ("months", "weeks", "years", "days"):
            raise bad(4, "Invalid value passed for interval_unit")
        plan["interval_unit"] = body["interval_unit"]
    if "tax_id" in body:
        _apply_tax(ctx, plan, body["tax_id"])
    if "custom_fields" in body:
        from .common import custom_fields

        plan["custom_fields"] = custom_fields(body["custom_fields"])


def create_plan(ctx: Ctx):
    require(ctx.body, "plan_code", "name", "recurring_price", "interval", "product_id")
    code = str(ctx.body["plan_code"])
    if code in ctx.store.plans:
        raise bad(101001, "The plan code already exists.")
    now = ctx.timestamp()
    plan = {
        "plan_code": code,
        "name": "",
        "description": "",
        "status": "active",
        "product_id": "",
        "account_id": "187955000000000388",
        "account_name": "Sales",
        "tax_id": "",
        "tax_name": "",
        "tax_percentage": 0,
        "tax_type": "",
        "trial_period": 0,
        "setup_fee": 0.0,
        "recurring_price": 0.0,
        "interval": 1,
        "interval_unit": "months",
        "billing_cycles": -1,
        "custom_fields": [],
        "url": f"{ctx.base_url}/subscribe/{code}",
        "addons": [],
        "created_time": now,
        "updated_time": now,
        "created_time_formatted": now,
        "updated_time_formatted": now,
    }
    _plan_fields(ctx, plan, ctx.body)
    ctx.store.plans[code] = plan
    return created("The plan has been added.", plan=plan)


def list_plans(ctx: Ctx):
    flt = ctx.query.get("filter_by", "PlanStatus.All")
    items = with_status(list(ctx.store.plans.values()), flt)
    if ctx.query.get("product_id"):
        items = [p for p in items if p["product_id"] == ctx.query["product_id"]]
    return page(ctx, items, "plans", flt)


def get_plan(ctx: Ctx):
    return ok("success", plan=_plan(ctx))


def update_plan(ctx: Ctx):
    plan = _plan(ctx)
    body = dict(ctx.body)
    if body.get("plan_code") not in (None, plan["plan_code"]):
        raise bad(4, "The plan code cannot be changed.")
    _plan_fields(ctx, plan, body)
    plan["updated_time"] = plan["updated_time_formatted"] = ctx.timestamp()
    return ok("The plan details have been updated.", plan=plan)


def delete_plan(ctx: Ctx):
    plan = _plan(ctx)
    if any(s["plan"]["plan_code"] == plan["plan_code"] for s in ctx.store.subscriptions.values()):
        raise bad(101009, "The plan cannot be deleted as it is associated with subscriptions.")
    del ctx.store.plans[plan["plan_code"]]
    return ok("The plan has been deleted.")


plan_active = _marker(_plan, "plan", "active")


plan_inactive = _marker(_plan, "plan", "inactive")


# addons ---------------------------------------------------------------------------------------------------------


def _addon(ctx: Ctx) -> dict:
    return stored(ctx.store.addons, ctx.params["addon_code"], bad, 102001, "Invalid AddonCode.")


def _addon_fields(ctx: Ctx, addon: dict, body: dict) -> None:
    if "product_id" in body:
        addon["product_id"] = _known_product_id(ctx, body["product_id"])
    for key in ("name", "description", "unit_name", "pricing_scheme"):
        if key in body:
            addon[key] = text(body, key)
    if body.get("type") in ("one_time", "recurring"):
        addon["type"] = body["type"]
    if body.get("interval_unit"):
        addon["interval_unit"] = body["interval_unit"]
    if "applicable_to_all_plans" in body:
        addon["applicable_to_all_plans"] = bool(body["applicable_to_all_plans"])
    if isinstance(body.get("price_brackets"), list) and body["price_brackets"]:
        addon["price_brackets"] = [
            {**b, "price": num(dec(b.get("price", 0), "price"))} for b in body["price_brackets"] if isinstance(b, dict)
        ]
    if "tax_id" in body:
        _apply_tax(ctx, addon, body["tax_id"])


def create_addon(ctx: Ctx):
    require(ctx.body, "addon_code", "name", "product_id")
    code = str(ctx.body["addon_code"])
    if code in ctx.store.addons:
        raise bad(102002, "The addon code already exists.")
    now = ctx.timestamp()
    addon = {
        "name": "",
        "addon_code": code,
        "description": "",
        "status": "active",
        "product_id": "",
        "account_id": "187955000000000388",
        "account_name": "Sales",
        "tax_id": "",
        "tax_name": "",
        "tax_percentage": 0,
        "tax_type": "",
        "applicable_to_all_plans": True,
        "type": "recurring",
        "pricing_scheme": "unit",
        "unit_name": "",
        "interval_unit": "monthly",
        "stock_on_hand": "",
        "price_brackets": [{"price": 0.0}],
        "created_time": now,
        "updated_time": now,
    }
    _addon_fields(ctx, addon, ctx.body)
    ctx.store.addons[code] = addon
    return created("The addon has been added.", addon=addon)


def list_addons(ctx: Ctx):
    flt = ctx.query.get("filter_by", "AddonStatus.All")
    items = with_status(list(ctx.store.addons.values()), flt)
    return page(ctx, items, "addons", flt)


def get_addon(ctx: Ctx):
    return ok("success", addon=_addon(ctx))


def update_addon(ctx: Ctx):
    addon = _addon(ctx)
    _addon_fields(ctx, addon, ctx.body)
    addon["updated_time"] = ctx.timestamp()
    return ok("The addon details have been updated.", addon=addon)


def delete_addon(ctx: Ctx):
    del ctx.store.addons[_addon(ctx)["addon_code"]]
    return ok("The addon has been deleted.")


addon_active = _marker(_addon, "addon", "active")


addon_inactive = _marker(_addon, "addon", "inactive")


__all__ = ["ApiError"]
