"""Helpers shared by the API handlers: request context (with ZOHO's clock), money, paging, validation."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from ..errors import bad

CENT = Decimal("0.01")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ADDRESS_KEYS = ("attention", "street", "street2", "city", "state", "zip", "country", "fax")


@dataclass
class Ctx:
    store: object
    config: object
    params: dict
    query: dict
    body: dict
    base_url: str = ""

    def today(self) -> str:
        """The emulated organization's date: every write is judged against ZOHO's clock, not the wall clock."""
        return self.store.clock.today()

    def timestamp(self) -> str:
        return self.store.clock.timestamp()

    def date(self, value, name: str) -> str:
        """A YYYY-MM-DD field, today when absent."""
        return self.today() if value in (None, "") else valid_date(value, name)

    def with_body(self, body: dict) -> Ctx:
        return replace(self, params={}, query={}, body=body)


def dec(value, name: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise bad(4, f"Invalid value passed for {name}") from None
    if not d.is_finite():
        raise bad(4, f"Invalid value passed for {name}")
    return d


def cents(d: Decimal) -> Decimal:
    return d.quantize(CENT, rounding=ROUND_HALF_UP)


def num(d: Decimal) -> float:
    """JSON number for an amount (always a float, like ZOHO's 0.0 / 99999.99)."""
    return float(cents(d))


def qty(value) -> float | int:
    d = dec(value, "quantity")
    return int(d) if d == d.to_integral_value() else float(d)


def require(body: dict, *names: str) -> None:
    for name in names:
        value = body.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise bad(4, f"Please enter {name}. {name} is mandatory.")


def valid_date(value, name: str) -> str:
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}$", value):
        raise bad(4, f"Invalid value passed for {name}")
    return value


def address(value) -> dict:
    value = value if isinstance(value, dict) else {}
    return {k: "" if value.get(k) is None else str(value.get(k)) for k in ADDRESS_KEYS}


def custom_fields(value) -> list[dict]:
    out = []
    for i, item in enumerate(value or [], start=1):
        if not isinstance(item, dict) or (item.get("label") is None and item.get("value") is None):
            continue
        out.append(
            {
                "index": item.get("index", i),
                "value": item.get("value"),
                "label": item.get("label") or "",
                "data_type": item.get("data_type", "text"),
            }
        )
    return out


def text(body: dict, name: str, default: str = "") -> str:
    value = body.get(name)
    return default if value is None else str(value)


SORT_ORDERS = ("A", "D")  # invoices.yml `sort_order` examples "D" (invoices), "A" (items); A ascending (U)


def sorted_by(ctx: Ctx, items: list[dict], columns: dict, default: str) -> tuple[list[dict], str, str]:
    """`items` in the order `sort_column` / `sort_order` ask for: (items, column, order). `columns` maps each
    documented column to a key of an item; any other column, or an order other than A/D, is refused the way the
    emulator refuses any invalid value (400, code 4, naming the parameter: ZOHO's own answer is **U**). Ties keep
    the store's order (creation), also when descending."""
    column = ctx.query.get("sort_column") or default
    order = (ctx.query.get("sort_order") or "A").upper()
    if column not in columns:
        raise bad(4, "Invalid value passed for sort_column")
    if order not in SORT_ORDERS:
        raise bad(4, "Invalid value passed for sort_order")
    if column == default and order == "A":
        return items, column, order  # the store is in creation order already
    return sorted(items, key=columns[column], reverse=order == "D"), column, order


def page(
    ctx: Ctx,
    items: list[dict],
    key: str,
    applied_filter: str,
    sort_column: str = "created_time",
    extra: dict | None = None,
    shown=None,
    sort_order: str = "A",
) -> tuple[int, dict]:
    """One page of `items`; `shown` (a function of the page's items) turns stored entities into list rows."""
    try:
        page_no = max(1, int(ctx.query.get("page", 1)))
        per_page = min(200, max(1, int(ctx.query.get("per_page", 200))))
    except ValueError:
        raise bad(4, "Invalid value passed for page") from None
    start = (page_no - 1) * per_page
    chunk = items[start : start + per_page]
    if shown is not None:
        chunk = shown(chunk)
    context = {
        "page": page_no,
        "per_page": per_page,
        "has_more_page": start + per_page < len(items),
        "applied_filter": applied_filter,
        "sort_column": sort_column,
        "sort_order": sort_order,
    }
    context.update(extra or {})
    return 200, {"code": 0, "message": "success", key: chunk, "page_context": context}


def stored(items: dict, key, error, code: int, message: str) -> dict:
    """The stored entity under `key`, or the API's error (`bad` or `not_found`) for an id it does not know."""
    item = items.get(key)
    if item is None:
        raise error(code, message)
    return item


def with_status(items: list[dict], applied_filter: str) -> list[dict]:
    """The items a `<Kind>Status.Active` / `.Inactive` filter keeps (every item for `.All`)."""
    status = applied_filter.split(".")[-1].lower()
    if status in ("active", "inactive"):
        return [i for i in items if i["status"] == status]
    return items


def ok(message: str, **entity) -> tuple[int, dict]:
    return 200, {"code": 0, "message": message, **entity}


def created(message: str, **entity) -> tuple[int, dict]:
    return 201, {"code": 0, "message": message, **entity}


def tax_of(ctx: Ctx, tax_id, required_known: bool = True) -> dict | None:
    if tax_id in (None, ""):
        return None
    tax = ctx.store.taxes.get(str(tax_id))
    if tax is None and required_known:
        raise bad(4, "Invalid value passed for tax_id")
    return tax
