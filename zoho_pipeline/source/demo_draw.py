"""The random values of a demo row, drawn from one seeded generator: ids, chances, times, e-mail addresses.

Every draw goes through `self.rng`, so a seed and a `today` give the same rows; the demo database (demo.py) and a
played month (demo_month.py) both draw with it.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
import uuid

from zoho_pipeline.source.demo_data import EMAIL_DOMAINS

UTC = dt.UTC


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isascii() and (ch.isalnum() or ch in ".-"))


class Draw:
    """The seeded generator and the draws of row values; `now` is 06:00 UTC on `today`."""

    def __init__(self, seed: int, today: dt.date):
        self.rng = random.Random(seed)
        self.today = today
        self.now = dt.datetime.combine(today, dt.time(6, 0), tzinfo=UTC)
        self.emails: set[str] = set()

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
