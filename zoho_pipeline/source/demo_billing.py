"""Six months of the demo's billing: each service's installation, pro-rata and monthly invoices, equipment and
adjustment invoices, and the payments made on them (on time, partly, bounced first, refunded, pending, failed),
plus payments that pay no invoice.

Drawn for the accounts the demo generator drew first (`customer_rows`, and `services_of` a customer, each service
with its `_package`), into its `rows`. Money is ZAR, excl. VAT, computed as ZOHO does (money.py).
"""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal

from zoho_pipeline.source.demo_data import EQUIPMENT, EXTRAS, INSTALLATION, METHOD_WEIGHTS, PAYMENT_METHODS
from zoho_pipeline.source.demo_draw import Draw
from zoho_pipeline.source.money import invoice_totals, line_item, money


class Billing(Draw):
    """The invoice and payment draws; a subclass draws the accounts and holds `rows` (demo._Gen)."""

    def __init__(self, seed: int, today: dt.date):
        super().__init__(seed, today)
        self.invoice_seq = 0
        self.txn_seq = 0

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
                    items = [line_item(d, 1, p) for d, p in INSTALLATION[family]]
                    if family == "Fibre" and self.chance(0.3):
                        items.append(line_item("Internal cabling (per metre)", r.randint(5, 30), "12.50"))
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
                    items = [line_item(f"{pkg['name']} — {month:%B %Y}", 1, svc["monthly_price"])]
                    if self.chance(0.25):
                        desc, price = r.choice(EXTRAS)
                        items.append(line_item(desc, 1, price))
                    if self.chance(0.02):
                        items = None if self.chance(0.5) else []
                    totals = None
                    if not items:  # no line items: the totals alone
                        totals = invoice_totals([dict(amount=svc["monthly_price"])])
                    self.add_invoice(cust, svc, "recurring", month, items, totals=totals)
            if self.chance(0.12):
                items = [line_item(d, r.choice([1, 1, 1, 2, 3]), p) for d, p in r.sample(EQUIPMENT, r.randint(1, 3))]
                day = max(self.today - dt.timedelta(days=r.randint(0, 180)), cust["created_at"].date())
                self.add_invoice(
                    cust, r.choice(services) if services and self.chance(0.6) else None, "equipment", day, items
                )
            if self.chance(0.06):
                day = max(self.today - dt.timedelta(days=r.randint(0, 180)), cust["created_at"].date())
                if self.chance(0.6):
                    items = [
                        line_item(
                            f"Credit: service outage {day - dt.timedelta(days=3):%d %B %Y}",
                            1,
                            -r.choice([50, 100, 150, 233.33]),
                        )
                    ]
                else:
                    items = [line_item("Late payment fee", 1, "100.00")]
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
