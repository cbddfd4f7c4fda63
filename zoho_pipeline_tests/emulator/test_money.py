"""Property: invoice money is per-line Decimal arithmetic, rounded half up to the cent."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoho_pipeline_tests.emulator.test_emulator import VAT, Api, emu

CENT = Decimal("0.01")
lines = st.lists(
    st.tuples(
        st.decimals(min_value=0, max_value=100000, places=2), st.integers(min_value=1, max_value=50), st.booleans()
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines)
def test_invoice_totals_match_decimal_half_up(items):
    api = _api()
    body = {
        "customer_id": api.cid,
        "invoice_items": [
            {"product_id": api.pid, "price": str(p), "quantity": q, **({"tax_id": VAT} if taxed else {})}
            for p, q, taxed in items
        ],
    }
    inv = api.ok("POST", "/invoices", body)["invoice"]
    sub = sum((p * q).quantize(CENT, ROUND_HALF_UP) for p, q, _ in items)
    tax = sum(
        ((p * q).quantize(CENT, ROUND_HALF_UP) * Decimal("0.15")).quantize(CENT, ROUND_HALF_UP)
        for p, q, t in items
        if t
    )
    assert Decimal(str(inv["sub_total"])) == sub
    assert Decimal(str(inv["tax_total"])) == tax
    assert Decimal(str(inv["total"])) == sub + tax == Decimal(str(inv["balance"]))


_STATE = {}


def _api():
    if "api" not in _STATE:
        handle = emu()
        api = Api(handle)
        api.pid = api.ok("POST", "/products", {"name": "Fibre"})["product"]["product_id"]
        api.cid = api.ok("POST", "/customers", {"display_name": "M", "email": "m@x.co"})["customer"]["customer_id"]
        _STATE.update(api=api, handle=handle)
    return _STATE["api"]


def teardown_module(module):
    if "handle" in _STATE:
        _STATE["handle"].stop()
