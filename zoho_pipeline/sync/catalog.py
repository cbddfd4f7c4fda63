"""The few ZOHO objects every mapping refers to: the VAT tax and the products plans and invoice lines hang on.

Each is found by name before it is created (there are five of them, so the look-up is cheap), and its id is
kept in `zoho_pipeline_state` so later runs spend no call on it. The set-up follows the rows' rule, claim → call →
look-up on doubt: one process at a time holds the object's claim (`state.claim`) while it looks the object up and
creates it; the others wait for the id it records. The holder renews its claim every CLAIM_RENEW_S while it works
(a look-up and a create may wait on the pace or a slow ZOHO far longer than the claim lives), so a holder that died
(SIGKILL mid set-up) is taken over CLAIM_TTL_S after its last renewal by a process that looks up first. A create
whose answer is lost is looked up before anything is sent again. So two processes never create the same product
twice, nor use different ids for it.
"""

from __future__ import annotations

import threading
import time
import uuid

from zoho_pipeline.sync import state
from zoho_pipeline.sync.state import get_state, set_state
from zoho_pipeline.zoho.errors import PERMANENT, ZohoError

# A set-up claim not renewed for this long belongs to a process that died: taken over. Short, since every row that
# needs the object waits meanwhile (60 s stalled a whole entity after a kill); the live holder renews it.
CLAIM_TTL_S = 10.0
CLAIM_RENEW_S = CLAIM_TTL_S / 5
CLAIM_WAIT_S = 90.0  # how long a process waits for another's set-up before the row fails (and retries)

# product key → (ZOHO product name, description)
PRODUCTS = {
    "services": ("Internet services", "Monthly connectivity plans"),
    "installation": ("Installation", "Once-off installation charges"),
    "pro_rata": ("Pro-rata charges", "Part-month service charges"),
    "equipment": ("Equipment", "Routers, ONTs and other equipment"),
    "adjustment": ("Adjustments", "Account adjustments"),
    "recurring": ("Monthly service before ZOHO billing", "Months billed before the subscription reached ZOHO"),
}
VAT_PERCENT = 15.0
# addon code → name: credit-note lines in ZOHO must name a plan or addon code
ADDONS = {"isp-account-credit": "Account credit"}


class Catalog:
    def __init__(self, engine, client, organization_id: str, offline: bool = False):
        self._offline = offline  # dry run: known ids from the state table, placeholders for the rest, no call
        self._engine = engine
        self._client = client
        self._org = organization_id
        self._lock = threading.RLock()  # an addon's resolution asks for the product and tax
        self._cache: dict[str, str] = {}
        self.missing: set[str] = set()  # offline: what a real run would still have to find or create

    def setup_calls(self) -> int:
        """Calls a real run spends on what is missing: a tax list read; a product list read and a create each."""
        return sum(1 if key.startswith("tax:") else 2 for key in self.missing)  # an addon: a read and a create

    def tax_id(self) -> str:
        return self._get("tax:vat", self._find_vat)

    def product_id(self, key: str) -> str:
        return self._get(f"product:{key}", lambda: self._find_or_create_product(key))

    def addon_code(self, code: str) -> str:
        return self._get(f"addon:{code}", lambda: self._find_or_create_addon(code))

    def _get(self, key: str, resolve) -> str:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            state_key = f"zoho:{self._org}:{key}"
            value = get_state(self._engine, state_key)
            if value is None and self._offline:
                self.missing.add(key)
                return f"<{key}>"
            if value is None:
                value = self._resolve_claimed(state_key, resolve)
            self._cache[key] = value
            return value

    def _resolve_claimed(self, state_key: str, resolve) -> str:
        """Resolve under the key's claim, or wait for the process holding it to record the id."""
        owner, claim_key = uuid.uuid4().hex, f"claim:{state_key}"
        deadline = time.monotonic() + CLAIM_WAIT_S
        while True:
            if state.claim(self._engine, claim_key, owner, CLAIM_TTL_S):
                renewing = _Renewal(self._engine, claim_key, owner)
                try:
                    value = get_state(self._engine, state_key)  # the previous holder may have finished
                    if value is None:
                        value = resolve()  # looks up first: what a dead holder created is adopted
                        set_state(self._engine, state_key, value)
                    return value
                finally:
                    renewing.stop()
                    state.release(self._engine, claim_key, owner)
            value = get_state(self._engine, state_key)
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise LookupError(f"{state_key} is being set up by another process for over {CLAIM_WAIT_S:.0f}s")
            time.sleep(0.2)

    def _find_vat(self) -> str:
        taxes = self._client.get("/settings/taxes").get("taxes", [])
        for tax in taxes:
            if float(tax.get("tax_percentage") or 0) == VAT_PERCENT and tax.get("tax_type", "tax") == "tax":
                return str(tax["tax_id"])
        raise LookupError(
            f"no {VAT_PERCENT:g} % tax in ZOHO Billing: create 'VAT 15 %' under Settings → Taxes, then rerun"
        )

    def _find_or_create_product(self, key: str) -> str:
        name, description = PRODUCTS[key]
        found = self._find_product(name)
        if found:
            return found
        try:
            created = self._client.post("/products", json={"name": name, "description": description})
        except ZohoError as exc:
            found = self._find_product(name) if exc.may_have_acted else None
            if found is None:  # it did not reach ZOHO: the row fails and retries, the claim is given back
                raise
            return found
        return str(created["product"]["product_id"])

    def _find_product(self, name: str) -> str | None:
        for product in self._client.iter_list("/products", "products"):
            if product.get("name") == name:
                return str(product["product_id"])
        return None

    def _find_or_create_addon(self, code: str) -> str:
        if self._addon_exists(code):
            return code
        try:
            self._client.post(
                "/addons",
                json={
                    "addon_code": code,
                    "name": ADDONS[code],
                    "product_id": self.product_id("services"),
                    "type": "one_time",
                    "pricing_scheme": "unit",
                    "unit_name": "credit",
                    "price_brackets": [{"price": 0}],
                    "tax_id": self.tax_id(),
                },
            )
        except ZohoError:
            # another process created it between our read and our create ("addon code already exists"), or the
            # create's answer was lost: the code is the addon's key, so ZOHO holding it is all that matters
            if not self._addon_exists(code):
                raise
        return code

    def _addon_exists(self, code: str) -> bool:
        try:
            self._client.get(f"/addons/{code}")
        except ZohoError as exc:
            if exc.kind != PERMANENT:
                raise
            return False
        return True


class _Renewal:
    """Renews a held claim every CLAIM_RENEW_S until stopped (a thread: the holder is busy with ZOHO meanwhile)."""

    def __init__(self, engine, claim_key: str, owner: str):
        self._engine, self._key, self._owner = engine, claim_key, owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zoho-catalog-claim", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(CLAIM_RENEW_S):
            try:
                state.claim(self._engine, self._key, self._owner, CLAIM_TTL_S)  # ours: refreshes its time
            except Exception:  # noqa: BLE001 - the next renewal tries again; the look-up-first rule covers a takeover
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
