"""Seeded demo data for a South African ISP's billing database.

`generate(customers, seed)` is pure (no database): the same seed and `today` give the same rows. `insert_rows`
writes them in batched executemany inserts (10 000 customers in seconds on SQLite and Postgres).

Drawn in order: the service packages, the customers and their services (here), six months of their invoices and
payments (demo_billing.py), then a few deliberately bad rows, as a real database accumulates them, listed in
`rows.bad`. Money is ZAR, excl. VAT, computed as ZOHO does (money.py).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from zoho_pipeline.source import business
from zoho_pipeline.source.demo_billing import Billing
from zoho_pipeline.source.demo_data import (
    COMPANY_PATTERNS,
    COMPLEXES,
    FIRST_NAMES,
    LAST_NAMES,
    MOBILE_PREFIXES,
    PACKAGES,
    PLACES,
    STREET_KINDS,
    STREETS,
    TRADES,
)
from zoho_pipeline.source.money import invoice_totals, line_item
from zoho_pipeline.source.tables import Garbled

INSERT_BATCH = 2000


class DemoRows(dict):
    """table name -> list of row dicts, in insert order; `bad` maps a kind of bad row to the ids of those rows."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bad: dict[str, list[str]] = {}


class _Gen(Billing):
    def __init__(self, customers: int, seed: int, today: dt.date):
        super().__init__(seed, today)
        self.n = customers
        self.rows = DemoRows({name: [] for name in business.BUSINESS_TABLE_NAMES})

    # -- accounts
    def packages(self) -> None:
        start = self.now - dt.timedelta(days=3 * 365)
        self.package_rows = []
        for name, desc, price, active in PACKAGES:
            created = self.ts_between(start, start + dt.timedelta(days=200))
            row = dict(
                id=self.uid(),
                name=name,
                description=desc,
                monthly_price=Decimal(price),
                is_active=active,
                created_at=created,
                updated_at=self.ts_between(created, self.now - dt.timedelta(days=30)),
            )
            self.rows["service_packages"].append(row)
            self.package_rows.append(row)
        self.active_packages = [p for p in self.package_rows if p["is_active"]]

    def customers(self) -> None:
        r = self.rng
        self.customer_rows = []
        for _ in range(self.n):
            first, last = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
            business_account = self.chance(0.2)
            city, province, suburbs = r.choice(PLACES)
            suburb, postal = r.choice(suburbs)
            company = vat = None
            if business_account:
                company = r.choice(COMPANY_PATTERNS).format(
                    last=last[0].upper() + last[1:], place=suburb, trade=r.choice(TRADES)
                )
                if self.chance(0.7):
                    vat = "4" + "".join(str(r.randint(0, 9)) for _ in range(9))
            if self.chance(0.9):
                phone = "+27" + r.choice(MOBILE_PREFIXES) + f"{r.randint(0, 9_999_999):07d}"
            elif self.chance(0.5):
                phone = "+27" + r.choice(["11", "12", "21", "31", "41", "51"]) + f"{r.randint(0, 9_999_999):07d}"
            else:
                phone = None
            addr = dict(
                address_line1=f"{r.randint(1, 250)} {r.choice(STREETS)} {r.choice(STREET_KINDS)}",
                address_line2=(f"Unit {r.randint(1, 120)}, {r.choice(COMPLEXES)}" if self.chance(0.25) else None),
                suburb=suburb,
                city=city,
                province=province,
                postal_code=postal,
            )
            roll = r.random()
            if roll < 0.04:  # no address at all
                addr = dict.fromkeys(addr)
            elif roll < 0.12:  # some parts missing
                for key in r.sample(["suburb", "postal_code", "province", "address_line1"], r.randint(1, 2)):
                    addr[key] = None
            status = r.choices(["active", "suspended", "closed"], [85, 8, 7])[0]
            created = self.ts_between(self.now - dt.timedelta(days=730), self.now - dt.timedelta(days=20))
            row = dict(
                id=self.uid(),
                email=self.email_for(first, last, company),
                first_name=first,
                last_name=last,
                phone=phone,
                account_type="business" if business_account else "personal",
                company_name=company,
                vat_number=vat,
                **addr,
                country="ZA",
                status=status,
                created_at=created,
                updated_at=self.ts_between(created, self.now),
            )
            self.rows["customers"].append(row)
            self.customer_rows.append(row)

    def services(self) -> None:
        r = self.rng
        self.services_of: dict[str, list[dict]] = {}
        for cust in self.customer_rows:
            count = r.choices([0, 1, 2, 3], [5, 75, 15, 5])[0]
            mine = self.services_of.setdefault(cust["id"], [])
            for _ in range(count):
                if cust["status"] == "closed":
                    status = "cancelled"
                elif cust["status"] == "suspended":
                    status = r.choice(["suspended", "suspended", "cancelled"])
                else:
                    status = r.choices(["pending", "active", "suspended", "cancelled"], [8, 76, 4, 12])[0]
                legacy = status in ("active", "suspended", "cancelled") and self.chance(0.1)
                pkg = r.choice(self.package_rows if legacy else self.active_packages)
                price = pkg["monthly_price"]
                if self.chance(0.12):  # promotion
                    price = max(Decimal("199.00"), price - Decimal(r.choice([50, 100, 150, 200])))
                created = self.ts_between(cust["created_at"], self.now - dt.timedelta(days=2))
                activation = cancellation = None
                if status != "pending":
                    activation = (created + dt.timedelta(days=r.randint(2, 21))).date()
                    activation = min(activation, self.today - dt.timedelta(days=1))
                if status == "cancelled":
                    span = (self.today - activation).days
                    cancellation = activation + dt.timedelta(days=r.randint(min(30, span), max(30, span)))
                    cancellation = min(cancellation, self.today)
                address = (
                    ", ".join(
                        p
                        for p in (
                            cust["address_line1"],
                            cust["address_line2"],
                            cust["suburb"],
                            cust["city"],
                            cust["postal_code"],
                        )
                        if p
                    )
                    or None
                )
                row = dict(
                    id=self.uid(),
                    customer_id=cust["id"],
                    package_id=pkg["id"],
                    status=status,
                    monthly_price=price,
                    activation_date=activation,
                    cancellation_date=cancellation,
                    installation_address=address,
                    created_at=created,
                    updated_at=self.ts_between(created, self.now),
                )
                row["_package"] = pkg
                self.rows["customer_services"].append(row)
                mine.append(row)

    # -- bad rows
    def bad_rows(self) -> None:
        if not self.customer_rows:
            return
        bad = self.rows.bad
        cust = self.customer_rows[0]
        cust["email"] = "thabo.at.example.co.za"
        bad["invalid_email"] = [cust["id"]]
        victim = self.customer_rows[min(1, len(self.customer_rows) - 1)]
        day = self.today - dt.timedelta(days=20)
        items = [line_item("Fibre installation and ONT activation", 1, "-1499.00")]
        inv = self.add_invoice(victim, None, "installation", day, items, status="sent")
        bad["negative_amount_invoice"] = [inv["id"]]
        items = [line_item("Wi-Fi 6 router", 1, "1299.00")]
        subtotal, vat, _ = invoice_totals(items)
        inv = self.add_invoice(
            victim,
            None,
            "equipment",
            day,
            items,
            status="sent",
            totals=(subtotal, vat, subtotal + vat + Decimal("10.00")),
        )
        bad["total_mismatch_invoice"] = [inv["id"]]
        garbled = Garbled('[{"description": "Router", "quantity": 1,')
        inv = self.add_invoice(
            victim, None, "equipment", day, garbled, status="sent", totals=invoice_totals([dict(amount=1299)])
        )
        bad["garbled_line_items_invoice"] = [inv["id"]]
        pay = self.add_payment(victim, None, Decimal("0.00"), "completed", self.now - dt.timedelta(days=3), "eft")
        bad["zero_amount_payment"] = [pay["id"]]

    def rare_rows(self) -> None:
        """Kinds the random draw can miss on a given day or seed, made certain: an outage credit, and a completed
        payment of the invalid-email customer (its children must fail with the parent's reason)."""
        if not self.customer_rows:
            return
        cust = self.customer_rows[min(2, len(self.customer_rows) - 1)]
        day = self.today - dt.timedelta(days=10)
        items = [line_item(f"Credit: service outage {day - dt.timedelta(days=3):%d %B %Y}", 1, "-100.00")]
        services = self.services_of[cust["id"]]
        self.add_invoice(cust, services[0] if services else None, "adjustment", day, items)
        self.add_payment(
            self.customer_rows[0], None, Decimal("500.00"), "completed", self.now - dt.timedelta(days=5), "eft"
        )

    def run(self) -> DemoRows:
        self.packages()
        self.customers()
        self.services()
        self.invoices()
        self.standalone_payments()
        self.bad_rows()
        self.rare_rows()
        for row in self.rows["customer_services"]:
            row.pop("_package", None)
        # children were appended in generation order; payments and invoices in date order read more naturally
        self.rows["customer_invoices"].sort(key=lambda x: (x["invoice_date"], x["invoice_number"]))
        self.rows["payment_transactions"].sort(key=lambda x: (x["created_at"], x["transaction_id"]))
        return self.rows


def generate(customers: int = 500, seed: int = 42, today: dt.date | None = None) -> DemoRows:
    """Pure: the demo rows per business table (insert order: parents first). Same (customers, seed, today) give
    the same rows. `today` defaults to the current UTC date; invoice dates span the ~6 months before it."""
    today = today or dt.datetime.now(dt.UTC).date()
    return _Gen(customers, seed, today).run()


def insert_rows(engine: sa.engine.Engine, rows: dict[str, list[dict]]) -> dict[str, int]:
    """Insert `rows` (from `generate`) in one transaction, batched executemany; returns rows inserted per table."""
    counts = {}
    with engine.begin() as conn:
        for table in business.BUSINESS_TABLES:
            data = rows.get(table.name, [])
            for start in range(0, len(data), INSERT_BATCH):
                conn.execute(table.insert(), data[start : start + INSERT_BATCH])
            counts[table.name] = len(data)
    return counts
