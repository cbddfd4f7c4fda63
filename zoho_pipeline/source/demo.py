"""Seeded demo data for a South African ISP's billing database.

`generate(customers, seed)` is pure (no database): the same seed and `today` give the same rows. `insert_rows`
writes them in batched executemany inserts (10 000 customers in seconds on SQLite and Postgres).

Money is ZAR, excl. VAT, Decimal with two places. An invoice's VAT is computed per line and summed
(`sum(round(amount * 0.15, 2))`), as ZOHO does, so a good invoice's totals equal what ZOHO computes.
A few deliberately bad rows, as a real database accumulates them, are listed in `rows.bad`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
import unicodedata
import uuid
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from zoho_pipeline.source import business
from zoho_pipeline.source.demo_data import (
    COMPANY_PATTERNS,
    COMPLEXES,
    EMAIL_DOMAINS,
    EQUIPMENT,
    EXTRAS,
    FIRST_NAMES,
    INSTALLATION,
    LAST_NAMES,
    METHOD_WEIGHTS,
    MOBILE_PREFIXES,
    PACKAGES,
    PAYMENT_METHODS,
    PLACES,
    STREET_KINDS,
    STREETS,
    TRADES,
)
from zoho_pipeline.source.tables import Garbled

VAT_RATE = Decimal("0.15")
CENT = Decimal("0.01")
UTC = dt.UTC
INSERT_BATCH = 2000


def money(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def line_vat(amount) -> Decimal:
    return money(Decimal(str(amount)) * VAT_RATE)


def invoice_totals(line_items: list[dict]) -> tuple[Decimal, Decimal, Decimal]:
    """(subtotal, vat, total) of line items the way ZOHO computes them: VAT rounded per line, then summed."""
    subtotal = sum((money(Decimal(str(li["amount"]))) for li in line_items), Decimal("0.00"))
    vat = sum((line_vat(li["amount"]) for li in line_items), Decimal("0.00"))
    return money(subtotal), money(vat), money(subtotal + vat)


class DemoRows(dict):
    """table name -> list of row dicts, in insert order; `bad` maps a kind of bad row to the ids of those rows."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bad: dict[str, list[str]] = {}


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isascii() and (ch.isalnum() or ch in ".-"))


class _Gen:
    def __init__(self, customers: int, seed: int, today: dt.date):
        self.rng = random.Random(seed)
        self.n = customers
        self.today = today
        self.now = dt.datetime.combine(today, dt.time(6, 0), tzinfo=UTC)
        self.rows = DemoRows({name: [] for name in business.BUSINESS_TABLE_NAMES})
        self.emails: set[str] = set()
        self.invoice_seq = 0
        self.txn_seq = 0

    # -- helpers
    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def ts_between(self, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        if end <= start:
            return start
        seconds = int((end - start).total_seconds())
        return (start + dt.timedelta(seconds=self.rng.randint(0, seconds))).replace(microsecond=0)

    def at(self, day: dt.date, hour_from: int = 6, hour_to: int = 20) -> dt.datetime:
        return dt.datetime.combine(
            day, dt.time(self.rng.randint(hour_from, hour_to), self.rng.randint(0, 59)), tzinfo=UTC
        )

    # -- tables
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

    def email_for(self, first: str, last: str, company: str | None) -> str:
        r = self.rng
        base_first, base_last = _ascii(first).lower(), _ascii(last.replace(" ", "")).lower()
        if company:
            domain = _ascii(company.split(" ")[0]).lower() + ".co.za"
            local = r.choice(["accounts", "info", "admin", base_first, "finance"])
        else:
            domain = r.choice(EMAIL_DOMAINS)
            local = r.choice([f"{base_first}.{base_last}", f"{base_first[0]}{base_last}", f"{base_first}{base_last}"])
        email = f"{local}@{domain}"
        n = 1
        while email in self.emails:
            n += 1
            email = f"{local}{n}@{domain}"
        self.emails.add(email)
        return email

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

    # -- invoices
    def next_invoice_number(self, day: dt.date) -> str:
        self.invoice_seq += 1
        return f"INV-{day.year}-{self.invoice_seq:06d}"

    def add_invoice(self, cust, service, kind, day, items, *, status=None, totals=None) -> dict:
        r = self.rng
        if totals is None:
            totals = invoice_totals(items or [])
        subtotal, vat, total = totals
        due = day + dt.timedelta(days=7 if kind == "recurring" else r.choice([7, 14, 30]))
        if status is None:
            if total <= 0:
                status = "sent" if total < 0 else "paid"
            else:
                roll = r.random()
                if roll < 0.04:
                    status = "draft"
                elif roll < 0.07:
                    status = "cancelled"
                elif due >= self.today:
                    status = r.choices(["sent", "paid", "partially_paid"], [60, 35, 5])[0]
                else:
                    status = r.choices(["paid", "partially_paid", "overdue"], [83, 7, 10])[0]
        created = self.at(day)
        row = dict(
            id=self.uid(),
            customer_id=cust["id"],
            service_id=service["id"] if service else None,
            invoice_number=self.next_invoice_number(day),
            invoice_type=kind,
            invoice_date=day,
            due_date=due,
            line_items=items,
            subtotal=subtotal,
            vat_amount=vat,
            total_amount=total,
            status=status,
            created_at=created,
            updated_at=self.ts_between(created, max(created, self.now)),
        )
        self.rows["customer_invoices"].append(row)
        self.payments_for(cust, row)
        return row

    @staticmethod
    def item(description, quantity, unit_price) -> dict:
        unit = money(Decimal(str(unit_price)))
        amount = money(unit * quantity)
        return dict(description=description, quantity=quantity, unit_price=float(unit), amount=float(amount))

    def window_start(self) -> dt.date:
        return self.today - dt.timedelta(days=182)

    def invoices(self) -> None:
        r = self.rng
        first_month = self.window_start().replace(day=1)
        for cust in self.customer_rows:
            services = self.services_of[cust["id"]]
            for svc in services:
                pkg = svc["_package"]
                if svc["activation_date"] is None:
                    continue
                family = pkg["name"].split(" ")[0]
                act = svc["activation_date"]
                end = svc["cancellation_date"] or self.today
                if act >= self.window_start() and self.chance(0.8):
                    items = [self.item(d, 1, p) for d, p in INSTALLATION[family]]
                    if family == "Fibre" and self.chance(0.3):
                        items.append(self.item("Internal cabling (per metre)", r.randint(5, 30), "12.50"))
                    self.add_invoice(cust, svc, "installation", act, items)
                if act >= self.window_start() and act.day != 1 and self.chance(0.85):
                    days_in = calendar.monthrange(act.year, act.month)[1]
                    days = days_in - act.day + 1
                    amount = money(svc["monthly_price"] * days / days_in)
                    last = act.replace(day=days_in)
                    items = [
                        dict(
                            description=f"Pro-rata {pkg['name']} {act:%d %b}–{last:%d %b %Y} ({days} days)",
                            quantity=1,
                            unit_price=float(amount),
                            amount=float(amount),
                        )
                    ]
                    self.add_invoice(cust, svc, "pro_rata", act, items)
                # recurring: the most recent months the service was billable, ~2 per service on average
                months = []
                m = first_month
                while m <= min(end, self.today):
                    if m > act:
                        months.append(m)
                    m = (m + dt.timedelta(days=32)).replace(day=1)
                for month in months[-r.choice([1, 1, 2, 2, 2, 3, 3]) :]:
                    items = [self.item(f"{pkg['name']} — {month:%B %Y}", 1, svc["monthly_price"])]
                    if self.chance(0.25):
                        desc, price = r.choice(EXTRAS)
                        items.append(self.item(desc, 1, price))
                    if self.chance(0.02):
                        items = None if self.chance(0.5) else []
                    totals = None
                    if not items:  # no line items: the totals alone
                        totals = invoice_totals([dict(amount=svc["monthly_price"])])
                    self.add_invoice(cust, svc, "recurring", month, items, totals=totals)
            if self.chance(0.12):
                items = [self.item(d, r.choice([1, 1, 1, 2, 3]), p) for d, p in r.sample(EQUIPMENT, r.randint(1, 3))]
                day = max(self.today - dt.timedelta(days=r.randint(0, 180)), cust["created_at"].date())
                self.add_invoice(
                    cust, r.choice(services) if services and self.chance(0.6) else None, "equipment", day, items
                )
            if self.chance(0.06):
                day = max(self.today - dt.timedelta(days=r.randint(0, 180)), cust["created_at"].date())
                if self.chance(0.6):
                    items = [
                        self.item(
                            f"Credit: service outage {day - dt.timedelta(days=3):%d %B %Y}",
                            1,
                            -r.choice([50, 100, 150, 233.33]),
                        )
                    ]
                else:
                    items = [self.item("Late payment fee", 1, "100.00")]
                self.add_invoice(cust, r.choice(services) if services else None, "adjustment", day, items)

    # -- payments
    def add_payment(self, cust, invoice, amount, status, when: dt.datetime, method=None) -> dict:
        r = self.rng
        self.txn_seq += 1
        when = min(when, self.now)
        row = dict(
            id=self.uid(),
            transaction_id=f"NC-{r.randint(1000, 9999)}{self.txn_seq:08d}",
            customer_id=cust["id"],
            invoice_id=invoice["id"] if invoice else None,
            amount=money(amount),
            currency="ZAR",
            payment_method=method or r.choices(PAYMENT_METHODS, METHOD_WEIGHTS)[0],
            status=status,
            completed_at=when if status in ("completed", "refunded") else None,
            created_at=when - dt.timedelta(minutes=r.randint(0, 90)),
            updated_at=when + (dt.timedelta(days=r.randint(1, 10)) if status == "refunded" else dt.timedelta()),
        )
        row["updated_at"] = min(row["updated_at"], self.now)
        self.rows["payment_transactions"].append(row)
        return row

    def payments_for(self, cust, inv) -> None:
        r = self.rng
        total, status = inv["total_amount"], inv["status"]
        paid_on = self.at(min(inv["due_date"], self.today) - dt.timedelta(days=r.randint(0, 6)))
        paid_on = max(paid_on, inv["created_at"] + dt.timedelta(hours=1))
        if status in ("paid", "partially_paid") and total > 0:
            if self.chance(0.08):  # a debit order bounced first
                self.add_payment(cust, inv, total, "failed", paid_on - dt.timedelta(days=2), "debit_order")
            amount = total if status == "paid" else money(total * Decimal(r.choice(["0.25", "0.5", "0.6"])))
            self.add_payment(cust, inv, amount, "completed", paid_on)
            if status == "paid" and self.chance(0.015):  # paid twice by mistake, the duplicate refunded
                self.add_payment(cust, inv, total, "refunded", paid_on + dt.timedelta(hours=5))
        elif status == "sent" and total > 0 and self.chance(0.15):
            self.add_payment(
                cust,
                inv,
                total,
                "pending",
                self.now - dt.timedelta(hours=r.randint(1, 48)),
                r.choice(["eft", "instant_eft"]),
            )
        elif status == "overdue" and self.chance(0.5):
            self.add_payment(cust, inv, total, "failed", paid_on, r.choice(["debit_order", "card"]))

    def standalone_payments(self) -> None:
        r = self.rng
        for cust in self.customer_rows:
            if self.chance(0.06):
                when = self.at(self.today - dt.timedelta(days=r.randint(1, 150)))
                self.add_payment(
                    cust,
                    None,
                    Decimal(r.choice([200, 500, 1000, 1149.85])),
                    "completed",
                    when,
                    r.choice(["eft", "cash", "instant_eft"]),
                )

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
        items = [self.item("Fibre installation and ONT activation", 1, "-1499.00")]
        inv = self.add_invoice(victim, None, "installation", day, items, status="sent")
        bad["negative_amount_invoice"] = [inv["id"]]
        items = [self.item("Wi-Fi 6 router", 1, "1299.00")]
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
        items = [self.item(f"Credit: service outage {day - dt.timedelta(days=3):%d %B %Y}", 1, "-100.00")]
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
    today = today or dt.datetime.now(UTC).date()
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
