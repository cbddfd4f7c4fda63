"""ZOHO's side of linking (sync/entities/recurring.py): its subscription invoices by (subscription, term start),
read from list pages newest first, back to the oldest term a linking pass needs; details read only for candidates
the list cannot decide; every subscription, for the day it reached ZOHO and the service it belongs to."""

from __future__ import annotations

PER_PAGE = 200
# ZOHO's invoices newest first, so a pass stops at the oldest term it needs (the cost of a pass stays flat with the
# organization's age). How far the order is trusted is `_pages_newest_first`'s docstring: the conservative reading.
NEWEST_FIRST = {"sort_column": "date", "sort_order": "D"}


class Zoho:
    """ZOHO's subscription invoices by (subscription, term start), from list pages; details read only for
    candidates the list cannot decide."""

    def __init__(self, client, report):  # report: recurring.LinkReport (its counters)
        self.client, self.report = client, report
        self.seen: set[str] = set()  # invoice ids: a row a page boundary shows twice counts once
        self.by_term: dict[tuple[str, str], list[dict]] = {}
        self.undecided: dict[tuple[str, str], list[dict]] = {}  # (customer, date) → rows naming no subscription
        self.terms_of: dict[str, list[str]] = {}  # subscription → its invoices' dates
        self.created_on: dict[str, str] = {}  # subscription → the day it was created in ZOHO
        self.of_service: dict[str, set[str]] = {}  # reference_id (our service id) → its subscriptions, old ones too

    def read(self, oldest: str | None) -> None:
        """ZOHO's invoices back to the term starting on `oldest` (all of them when None), and every subscription
        (the day each was created, the service it belongs to)."""
        for item in self._pages_newest_first(oldest) if oldest else self._pages("/invoices", "invoices", "Status.All"):
            self._add(item)
        for item in self._pages("/subscriptions", "subscriptions", "SubscriptionStatus.All"):
            sub = str(item.get("subscription_id"))
            if item.get("created_time"):
                self.created_on[sub] = str(item["created_time"])[:10]
            if item.get("reference_id"):
                self.of_service.setdefault(str(item["reference_id"]), set()).add(sub)

    def _pages(self, path: str, key: str, status: str):
        page = 1
        while True:
            body = self.client.get(path, params={"filter_by": status, "page": page, "per_page": PER_PAGE})
            self.report.list_pages += 1
            yield from body.get(key) or []
            if not (body.get("page_context") or {}).get("has_more_page"):
                return
            page += 1

    def _pages_newest_first(self, oldest: str):
        """The conservative reading of ZOHO's invoice list sorted newest first. `sort_column` (its allowed values)
        and `sort_order` ("D" as the example) are in ZOHO's invoice schema, but GET /invoices does not list them
        among its parameters (../shared/reference/zoho-billing-api.md §3.2), so the order is trusted only as far as
        each answer shows it: the page_context echoes `date` and `D`, and the dates never rise, down the page and
        from the page before. Reading stops only after a page whose oldest row is dated strictly before `oldest`
        (rows of that very day may run onto the next page). Any answer that does not show the order turns the
        early stop off: the remaining pages are read, and every page together is every invoice, sorted or not."""
        page, newest_first, floor = 1, True, None
        while True:
            params = {"filter_by": "Status.All", "page": page, "per_page": PER_PAGE, **NEWEST_FIRST}
            body = self.client.get("/invoices", params=params)
            self.report.list_pages += 1
            items = body.get("invoices") or []
            yield from items
            context = body.get("page_context") or {}
            if not context.get("has_more_page"):
                return
            days = [_day(i) for i in items]
            if newest_first and not _shows_newest_first(context, days, floor):
                newest_first, self.report.order_unconfirmed = False, True
            if newest_first and days and days[-1] < oldest:
                self.report.invoices_from = oldest
                return
            floor = days[-1] if days else floor
            page += 1

    def _add(self, item: dict) -> None:
        if str(item.get("invoice_id")) in self.seen:
            return
        self.seen.add(str(item.get("invoice_id")))
        day = _day(item)
        if "subscription_id" not in item:  # ZOHO's list schema does not promise it: the detail decides
            self.undecided.setdefault((str(item.get("customer_id")), day), []).append(item)
            return
        sub = str(item.get("subscription_id") or "")
        if sub:
            self.by_term.setdefault((sub, day), []).append(item)
            self.terms_of.setdefault(sub, []).append(day)

    def detail(self, invoice_id: str) -> dict:
        self.report.detail_reads += 1
        return self.client.get(f"/invoices/{invoice_id}").get("invoice") or {}

    def candidates(self, subscription_id: str, customer_zoho_id: str | None, day: str) -> list[dict]:
        found = list(self.by_term.get((subscription_id, day), []))
        for item in self.undecided.get((str(customer_zoho_id), day), []) if customer_zoho_id else []:
            full = self.detail(str(item["invoice_id"]))
            subs = {str(full.get("subscription_id") or "")} | {
                str(s.get("subscription_id")) for s in full.get("subscriptions") or []
            }
            if subscription_id in subs:
                found.append({**item, **full})
        if len(found) > 1:  # the list cannot tell a prorated charge from the term's bill: the details can
            found = [{**c, **self.detail(str(c["invoice_id"]))} if "transaction_type" not in c else c for c in found]
            found = [c for c in found if (c.get("transaction_type") or "") != "upgrade"]
        return found


def _day(item: dict) -> str:
    return str(item.get("invoice_date") or item.get("date") or "")[:10]


def _shows_newest_first(context: dict, days: list[str], floor: str | None) -> bool:
    """The page is ordered as NEWEST_FIRST asked: ZOHO says so, and its dates never rise (nor above `floor`, the
    last date of the page before)."""
    echoed = (context.get("sort_column"), str(context.get("sort_order") or "").upper())
    if echoed != (NEWEST_FIRST["sort_column"], NEWEST_FIRST["sort_order"]) or not all(days):
        return False
    return all(a >= b for a, b in zip([floor or days[0], *days], days, strict=False))
