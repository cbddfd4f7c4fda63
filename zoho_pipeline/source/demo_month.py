"""One month of the provider's business, played on a demo database (the rows a real month leaves behind).

    played = play_month(engine, seed=42)          # the month after the newest monthly billing run
    played.month, played.as_dict()

What a month holds, from the day after the database's newest change up to the billing day (the 1st):
- a handful of new customers, each with a service activated in the month, its installation and pro-rata invoices;
- upgrades (a service moved to a dearer package, with a pro-rata invoice for the rest of the month), cancellations,
  and closures (the customer closed, its services cancelled);
- payments of the open invoices: most on time, some late, some not at all (past due: `overdue`);
- a few earlier completed payments refunded, and a few debit orders bounced (completed → failed), their invoices
  owed again;
- the monthly billing run on the 1st: a `recurring` invoice per active or suspended service.

Played in the order a provider lives it, in two transactions: first the account changes (new customers with their
installation and pro-rata invoices, upgrades, cancellations, closures), all dated before the eve of the billing
day (`changes_end`); then `between` runs (the demo moves ZOHO's clock to the eve, syncs those changes, moves the
clock to the billing day so ZOHO renews); then the month's payments, refunds, bounces and the billing run.
Seeded by (seed, month): the same database and seed play the same month. Which month: the one after the newest
`recurring` invoice, so playing again plays the next month (a failure in `between` leaves the changes written and
the billing run not: playing again plays that month's business again, with new changes). ZOHO's side of time (its
clock, renewals and own invoices) is moved by `demo_clock`, never here: this module knows the database only.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal

import sqlalchemy as sa

from zoho_pipeline.source import business, demo
from zoho_pipeline.source import tables as T
from zoho_pipeline.source.demo_data import INSTALLATION, METHOD_WEIGHTS, PAYMENT_METHODS
from zoho_pipeline.source.money import invoice_totals, line_item, money

UTC = dt.UTC
OPEN = ("sent", "overdue", "partially_paid")
ON_TIME, LATE = 0.78, 0.12  # the rest of the open invoices stay unpaid this month


@dataclass
class MonthPlayed:
    """What one played month changed in the source."""

    month: dt.date  # the billing day played: the 1st of the month billed
    period_start: dt.datetime
    new_customers: int = 0
    upgrades: int = 0
    cancellations: int = 0
    closures: int = 0
    recurring_invoices: int = 0
    one_off_invoices: int = 0
    payments_on_time: int = 0
    payments_late: int = 0
    left_unpaid: int = 0
    refunds: int = 0
    bounces: int = 0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["month"], out["period_start"] = self.month.isoformat(), self.period_start.isoformat()
        return out


def add_month(day: dt.date) -> dt.date:
    return (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day `months` calendar months earlier (the month's last day when it is shorter)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def next_billing_month(engine) -> dt.date:
    """The month after the newest monthly billing run (no recurring invoice yet: next month from today)."""
    inv = T.customer_invoices.c
    with engine.connect() as conn:
        newest = conn.execute(sa.select(sa.func.max(inv.invoice_date)).where(inv.invoice_type == "recurring")).scalar()
    if isinstance(newest, str):  # SQLite hands back text when the aggregate loses the column's type
        newest = dt.date.fromisoformat(newest[:10])
    return add_month(newest or dt.datetime.now(UTC).date())


def first_month(engine) -> dt.date | None:
    """The first month holding an invoice or a completed payment (the monthly partitions start there)."""
    inv, pay = T.customer_invoices.c, T.payment_transactions.c
    with engine.connect() as conn:
        days = [
            conn.execute(sa.select(sa.func.min(inv.invoice_date))).scalar(),
            conn.execute(sa.select(sa.func.min(pay.completed_at))).scalar(),
        ]
    days = [dt.date.fromisoformat(d[:10]) if isinstance(d, str) else d for d in days if d is not None]
    days = [d.date() if isinstance(d, dt.datetime) else d for d in days]
    return min(days).replace(day=1) if days else None


def changes_end(month: dt.date) -> dt.datetime:
    """The month's account changes are dated before 23:00 UTC on the eve of billing day `month`: ZOHO's clock can
    stand after them and before its renewals (which run on the billing day's date, from 00:00)."""
    return dt.datetime.combine(month, dt.time(0, 0), tzinfo=UTC) - dt.timedelta(hours=1)


def _aware(value) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class _Month:
    def __init__(self, conn, month: dt.date, seed: int):
        self.conn = conn
        self.month = month
        self.rng = random.Random(f"{seed}:{month.isoformat()}")
        self.billing_at = dt.datetime.combine(month, dt.time(2, 0), tzinfo=UTC)
        previous = self.billing_at - dt.timedelta(days=calendar.monthrange(*_previous(month))[1])
        newest = [
            conn.execute(sa.select(sa.func.max(table.c.updated_at))).scalar()
            for table in (T.customers, T.payment_transactions)
        ]
        newest = max([_aware(v) for v in newest if v is not None], default=previous)
        self.start = min(max(previous, newest + dt.timedelta(minutes=1)), self.billing_at - dt.timedelta(days=1))
        self.played = MonthPlayed(month=month, period_start=self.start)
        self.inserts: dict[str, list[dict]] = {t.name: [] for t in business.BUSINESS_TABLES}
        self.added: set[str] = set()  # services opened this month: no upgrade or cancellation yet
        self.written: set[str] = set()  # ids of the rows the account changes wrote: not paid or refunded this month
        self.changes_end = changes_end(month)
        self.gen = demo._Gen(0, seed, month)  # its row draws (ids, names, e-mails, customers) on our rng
        self.gen.rng = self.rng
        self.gen.emails = set(conn.execute(sa.select(T.customers.c.email)).scalars())
        self.invoice_seq = _max_suffix(conn, T.customer_invoices.c.invoice_number)
        self.txn_seq = _max_suffix(conn, T.payment_transactions.c.transaction_id)

    # -- helpers
    def when(self, start: dt.datetime | None = None, end: dt.datetime | None = None) -> dt.datetime:
        return self.gen.ts_between(start or self.start, end or self.billing_at - dt.timedelta(hours=1))

    def update(self, table, row_id, **values) -> None:
        self.conn.execute(table.update().where(table.c.id == row_id).values(**values))

    def invoice(self, cust_id, service_id, kind, day: dt.date, items, status: str, at: dt.datetime) -> dict:
        subtotal, vat, total = invoice_totals(items)
        self.invoice_seq += 1
        row = dict(
            id=self.gen.uid(),
            customer_id=cust_id,
            service_id=service_id,
            invoice_number=f"INV-{day.year}-{self.invoice_seq:06d}",
            invoice_type=kind,
            invoice_date=day,
            due_date=day + dt.timedelta(days=7 if kind == "recurring" else 14),
            line_items=items,
            subtotal=subtotal,
            vat_amount=vat,
            total_amount=total,
            status=status,
            created_at=at,
            updated_at=at,
        )
        self.inserts["customer_invoices"].append(row)
        if kind != "recurring":
            self.played.one_off_invoices += 1
        return row

    def payment(self, cust_id, invoice_id, amount, at: dt.datetime, method=None) -> None:
        self.txn_seq += 1
        self.inserts["payment_transactions"].append(
            dict(
                id=self.gen.uid(),
                transaction_id=f"NC-{self.rng.randint(1000, 9999)}{self.txn_seq:08d}",
                customer_id=cust_id,
                invoice_id=invoice_id,
                amount=money(amount),
                currency="ZAR",
                payment_method=method or self.rng.choices(PAYMENT_METHODS, METHOD_WEIGHTS)[0],
                status="completed",
                completed_at=at,
                created_at=at - dt.timedelta(minutes=self.rng.randint(0, 90)),
                updated_at=at,
            )
        )

    def pro_rata(self, cust_id, service_id, label: str, monthly: Decimal, day: dt.date, at: dt.datetime) -> None:
        days_in = calendar.monthrange(day.year, day.month)[1]
        days = days_in - day.day + 1
        amount = money(monthly * days / days_in)
        if amount > 0:
            last = day.replace(day=days_in)
            text = f"Pro-rata {label} {day:%d %b}–{last:%d %b %Y} ({days} days)"
            self.invoice(cust_id, service_id, "pro_rata", day, [line_item(text, 1, amount)], "sent", at)

    # -- the month
    def load(self) -> None:
        c = self.conn
        self.packages = [dict(r) for r in c.execute(sa.select(T.service_packages).order_by("name")).mappings()]
        self.package_of = {p["id"]: p for p in self.packages}
        self.customers = [
            dict(r)
            for r in c.execute(
                sa.select(T.customers.c.id, T.customers.c.status, T.customers.c.email).order_by(T.customers.c.id)
            ).mappings()
        ]
        svc = T.customer_services.c
        self.services = [
            dict(r)
            for r in c.execute(
                sa.select(svc.id, svc.customer_id, svc.package_id, svc.status, svc.monthly_price, svc.activation_date)
                .where(svc.status.in_(("active", "suspended")))
                .order_by(svc.id)
            ).mappings()
        ]

    def new_customers(self) -> None:
        count = max(2, round(len(self.customers) * 0.02))
        self.gen.n, self.gen.now, self.gen.today = count, self.billing_at, self.month
        self.gen.customer_rows, self.gen.rows = [], demo.DemoRows({"customers": []})
        self.gen.customers()
        active = [p for p in self.packages if p["is_active"]]
        for cust in self.gen.customer_rows:
            cust.update(status="active", created_at=self.when(end=self.billing_at - dt.timedelta(days=5)))
            cust["updated_at"] = cust["created_at"]
            self.inserts["customers"].append(cust)
            pkg = self.rng.choice(active)
            activated = self.when(cust["created_at"] + dt.timedelta(days=2), self.billing_at - dt.timedelta(days=2))
            service = dict(
                id=self.gen.uid(),
                customer_id=cust["id"],
                package_id=pkg["id"],
                status="active",
                monthly_price=pkg["monthly_price"],
                activation_date=activated.date(),
                cancellation_date=None,
                installation_address=cust["address_line1"],
                created_at=cust["created_at"],
                updated_at=activated,
            )
            self.inserts["customer_services"].append(service)
            self.services.append(service)
            self.added.add(service["id"])
            family = pkg["name"].split(" ")[0]
            items = [line_item(d, 1, p) for d, p in INSTALLATION[family]]
            inv = self.invoice(cust["id"], service["id"], "installation", activated.date(), items, "paid", activated)
            self.payment(cust["id"], inv["id"], inv["total_amount"], activated + dt.timedelta(hours=3))
            if activated.day != 1:
                self.pro_rata(cust["id"], service["id"], pkg["name"], pkg["monthly_price"], activated.date(), activated)
        self.played.new_customers = count

    def changes(self) -> None:
        """Upgrades, cancellations and closures of existing accounts (never the ones added this month)."""
        r, svc_table = self.rng, T.customer_services
        existing = [s for s in self.services if s["status"] == "active" and s["id"] not in self.added]
        r.shuffle(existing)
        n_up, n_cancel = max(1, round(len(existing) * 0.03)), max(1, round(len(existing) * 0.015))
        for s in existing[:n_up]:
            current = self.package_of[s["package_id"]]
            dearer = [p for p in self.packages if p["is_active"] and p["monthly_price"] > current["monthly_price"]]
            if not dearer:
                continue
            new = min(dearer, key=lambda p: p["monthly_price"])
            at = self.when(end=self.changes_end)
            self.update(svc_table, s["id"], package_id=new["id"], monthly_price=new["monthly_price"], updated_at=at)
            difference = new["monthly_price"] - current["monthly_price"]
            self.pro_rata(s["customer_id"], s["id"], f"upgrade to {new['name']}", difference, at.date(), at)
            s.update(package_id=new["id"], monthly_price=new["monthly_price"])
            self.played.upgrades += 1
        for s in existing[n_up : n_up + n_cancel]:
            at = self.when(end=self.changes_end)
            self.update(svc_table, s["id"], status="cancelled", cancellation_date=at.date(), updated_at=at)
            s["status"] = "cancelled"
            self.played.cancellations += 1
        bad = min(3, len(self.customers))  # the demo's first customers carry its deliberately bad rows
        open_accounts = [c for c in self.customers[bad:] if c["status"] == "active"]
        for cust in r.sample(open_accounts, min(len(open_accounts), max(1, round(len(self.customers) * 0.01)))):
            at = self.when(end=self.changes_end)
            self.update(T.customers, cust["id"], status="closed", updated_at=at)
            for s in self.services:
                if s["customer_id"] == cust["id"] and s["status"] != "cancelled":
                    self.update(svc_table, s["id"], status="cancelled", cancellation_date=at.date(), updated_at=at)
                    s["status"] = "cancelled"
            self.played.closures += 1

    def payments(self) -> None:
        inv, pay = T.customer_invoices.c, T.payment_transactions.c
        paid = dict(
            self.conn.execute(
                sa.select(pay.invoice_id, sa.func.sum(pay.amount))
                .where(pay.status == "completed", pay.invoice_id.is_not(None))
                .group_by(pay.invoice_id)
            ).all()
        )
        rows = self.conn.execute(
            sa.select(inv.id, inv.customer_id, inv.total_amount, inv.due_date, inv.created_at)
            .where(inv.status.in_(OPEN), inv.total_amount > 0, inv.invoice_date < self.month)
            .where(inv.id.not_in(self.written) if self.written else sa.true())
            .order_by(inv.invoice_date, inv.id)
        ).mappings()
        for row in rows:
            owed = money(Decimal(row["total_amount"]) - Decimal(paid.get(row["id"]) or 0))
            due = dt.datetime.combine(row["due_date"], dt.time(18, 0), tzinfo=UTC)
            earliest = max(self.start, _aware(row["created_at"]) + dt.timedelta(hours=1))
            roll = self.rng.random()
            if owed > 0 and roll < ON_TIME and due > earliest:
                at = self.when(earliest, min(due, self.billing_at - dt.timedelta(hours=1)))
                self.played.payments_on_time += 1
            elif owed > 0 and roll < ON_TIME + LATE and due + dt.timedelta(days=1) < self.billing_at:
                at = self.when(max(earliest, due + dt.timedelta(days=1)))
                self.played.payments_late += 1
            else:
                if row["due_date"] < self.month:
                    self.update(T.customer_invoices, row["id"], status="overdue", updated_at=self.when())
                self.played.left_unpaid += 1
                continue
            self.payment(row["customer_id"], row["id"], owed, at)
            self.update(T.customer_invoices, row["id"], status="paid", updated_at=at)

    def reversals(self) -> None:
        """A few completed payments (preferably ones ZOHO already holds) refunded, a few debit orders bounced."""
        pay = T.payment_transactions.c
        done = [
            dict(r)
            for r in self.conn.execute(
                sa.select(pay.id, pay.invoice_id, pay.payment_method, pay.zoho_payment_id)
                .where(pay.status == "completed", pay.invoice_id.is_not(None), pay.amount > 0)
                .where(pay.id.not_in(self.written) if self.written else sa.true())
                .order_by(pay.zoho_payment_id.is_(None), pay.completed_at.desc(), pay.id)
                .limit(200)
            ).mappings()
        ]
        self.rng.shuffle(done)
        done.sort(key=lambda p: p["zoho_payment_id"] is None)
        bounced = [p for p in done if p["payment_method"] == "debit_order"][:2]
        refunded = [p for p in done if p not in bounced][: self.rng.randint(1, 2)]
        for payments, status in ((bounced, "failed"), (refunded, "refunded")):
            for p in payments:
                at = self.when()
                values = dict(status=status, updated_at=at) | ({"completed_at": None} if status == "failed" else {})
                self.update(T.payment_transactions, p["id"], **values)
                self.update(T.customer_invoices, p["invoice_id"], status="overdue", updated_at=at)
        self.played.bounces, self.played.refunds = len(bounced), len(refunded)

    def billing_run(self) -> None:
        for s in self.services:
            if s["status"] not in ("active", "suspended") or (s["activation_date"] or self.month) >= self.month:
                continue
            pkg = self.package_of[s["package_id"]]
            items = [line_item(f"{pkg['name']} — {self.month:%B %Y}", 1, s["monthly_price"])]
            self.invoice(s["customer_id"], s["id"], "recurring", self.month, items, "sent", self.billing_at)
            self.played.recurring_invoices += 1

    def write(self) -> None:
        for table in business.BUSINESS_TABLES:
            rows = self.inserts[table.name]
            if rows:
                self.conn.execute(T.TABLES_BY_NAME[table.name].insert(), rows)
                self.written.update(row["id"] for row in rows)
            self.inserts[table.name] = []


def _previous(month: dt.date) -> tuple[int, int]:
    prev = month - dt.timedelta(days=1)
    return prev.year, prev.month


def _max_suffix(conn, column) -> int:
    """The largest number at the end of `column`'s values (invoice numbers, transaction ids): new ones follow it."""
    values = conn.execute(sa.select(column)).scalars()
    return max((int(v[-6:]) for v in values if v and v[-6:].isdigit()), default=0)


def play_month(
    engine, seed: int = 42, month: dt.date | None = None, between: Callable[[MonthPlayed], None] | None = None
) -> MonthPlayed:
    """Play the business up to billing day `month` (default: the next billing run): the account changes in one
    transaction, then `between(played so far)`, then the payments and the billing run in a second transaction."""
    month = month or next_billing_month(engine)
    if month.day != 1:
        raise ValueError(f"a billing day is the 1st of a month, not {month}")
    with engine.begin() as conn:
        m = _Month(conn, month, seed)
        m.load()
        m.new_customers()
        m.changes()
        m.write()
    if between is not None:
        between(m.played)
    with engine.begin() as conn:
        m.conn = conn
        m.reversals()
        m.payments()
        m.billing_run()
        m.write()
    return m.played
