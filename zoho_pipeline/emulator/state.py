"""The emulator's store: one dict per ZOHO module, id counters, tokens, the clock, and JSON persistence.

Attributes for assertions (all dicts keyed by the entity's path id, values are the stored entity dicts):
``products``, ``plans`` (by plan_code), ``addons`` (by addon_code), ``customers``, ``subscriptions``, ``invoices``,
``payments``, ``creditnotes``, ``refunds``, ``taxes``; ``schedule`` (subscription id -> its billing anchor and any
end-of-term change, see ``api.terms``); ``clock`` (``clock.Clock``). ``lock`` guards everything (an RLock).
The state file keeps all of it, so a restarted emulator continues the same schedule from the same `now`.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading

from .clock import Clock, iso, parse_time, wall_clock

COLLECTIONS = (
    "products",
    "plans",
    "addons",
    "customers",
    "subscriptions",
    "invoices",
    "payments",
    "creditnotes",
    "refunds",
    "taxes",
    "schedule",
)
FIRST_ID = 187955000000050001
VAT_TAX_ID = "187955000000000435"
SAVE_INTERVAL_S = 0.2  # a process killed with SIGKILL loses at most this much of the state file


class Store:
    def __init__(self, state_file: str | None = None, start=None):
        self.lock = threading.RLock()
        self.state_file = state_file
        self.clock = Clock(start or wall_clock())  # a clock saved in the state file wins (see load)
        self.tokens: dict[str, dict] = {}  # access token -> {"refresh_token", "expires_at", "reported_expiry"}
        self.mints: dict[str, list[float]] = {}  # refresh token -> wall-clock mint times
        self.wipe()
        if state_file and os.path.exists(state_file):
            self.load()
        # writes mark the store dirty; a saver thread writes the file at most every SAVE_INTERVAL_S, and close()
        # writes the rest, so a big store is not re-serialised on every request
        self._dirty = False
        self._closed = threading.Event()
        self._saver = None
        if state_file:
            self._saver = threading.Thread(target=self._save_loop, daemon=True, name="emulator-state-saver")
            self._saver.start()

    def wipe(self) -> None:
        with self.lock:
            for name in COLLECTIONS:
                setattr(self, name, {})
            self.next_id = FIRST_ID
            self.seq = {"invoice": 0, "creditnote": 0, "refund": 0}
            self.taxes[VAT_TAX_ID] = {
                "tax_id": VAT_TAX_ID,
                "tax_name": "VAT",
                "tax_percentage": 15,
                "tax_type": "tax",
                "is_default_tax": True,
                "is_editable": True,
                "tax_authority_id": "",
                "tax_authority_name": "",
            }

    def new_id(self) -> str:
        with self.lock:
            value = self.next_id
            self.next_id += 1
            return str(value)

    def next_number(self, kind: str, prefix: str, width: int) -> str:
        with self.lock:
            self.seq[kind] += 1
            return f"{prefix}{self.seq[kind]:0{width}d}"

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {name: len(getattr(self, name)) for name in COLLECTIONS}

    # persistence -----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        with self.lock:
            data = {name: getattr(self, name) for name in COLLECTIONS}
            data.update(next_id=self.next_id, seq=self.seq, tokens=self.tokens, mints=self.mints)
            data["clock"] = iso(self.clock.now())
            return data

    def mark_dirty(self) -> None:
        self._dirty = True

    def flush(self) -> None:
        with self.lock:
            if self._dirty:
                self._dirty = False
                self.save()

    def close(self) -> None:
        """Stop the saver and write what is pending."""
        self._closed.set()
        if self._saver is not None:
            self._saver.join(timeout=5)
        self.flush()

    def _save_loop(self) -> None:
        while not self._closed.wait(SAVE_INTERVAL_S):
            self.flush()

    def save(self) -> None:
        if not self.state_file:
            return
        with self.lock:
            directory = os.path.dirname(os.path.abspath(self.state_file))
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".emulator-state-", dir=directory)
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(self.to_dict(), fh)
                os.replace(tmp, self.state_file)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise

    def load(self) -> None:
        with self.lock:
            with open(self.state_file) as fh:
                data = json.load(fh)
            for name in COLLECTIONS:
                if name in data:
                    setattr(self, name, data[name])
            self.next_id = int(data.get("next_id", self.next_id))
            self.seq.update(data.get("seq", {}))
            self.tokens = data.get("tokens", {})
            self.mints = data.get("mints", {})
            if data.get("clock"):
                self.clock = Clock(parse_time(data["clock"]))
