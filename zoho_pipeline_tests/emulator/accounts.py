"""What the emulator tests build first, over real HTTP: the catalog (two fibre plans with VAT) and a customer.

Also the one place these tests import the shared emulator test helpers from (the HTTP client, the emulator
starter, the OpenAPI example reader), so a move of those modules is one edit here.
"""

from __future__ import annotations

from zoho_pipeline_tests.emulator.test_emulator import VAT, Api, emu  # noqa: F401 - re-exported for the emulator tests
from zoho_pipeline_tests.emulator.test_shapes import OPENAPI, _resolve, openapi_example  # noqa: F401 - re-exported

PLANS = {"fibre-50": 500, "fibre-100": 800}  # plan code -> monthly price before VAT


def catalog(api) -> str:
    """The product "Internet services" and the PLANS, monthly, with VAT. Returns the product id."""
    product_id = api.ok("POST", "/products", {"name": "Internet services"})["product"]["product_id"]
    for code, price in PLANS.items():
        api.ok(
            "POST",
            "/plans",
            {
                "plan_code": code,
                "name": code,
                "recurring_price": price,
                "interval": 1,
                "product_id": product_id,
                "tax_id": VAT,
            },
        )
    return product_id


def customer(api, email: str = "thabo@example.co.za", **extra) -> str:
    return api.ok("POST", "/customers", {"display_name": "Thabo M", "email": email, **extra})["customer"]["customer_id"]
