"""ZOHO's OpenAPI request examples for the lifecycle writes are accepted over real HTTP (their ids replaced by
real ones, and their dates and amounts by ones the state allows), with the answers' documented keys."""

from __future__ import annotations

import yaml

from zoho_pipeline_tests.emulator.accounts import (
    OPENAPI,
    VAT,
    Api,
    _resolve,
    catalog,
    customer,
    emu,
    openapi_example,
)


def put_example(spec: str, path: str) -> dict:
    doc = yaml.safe_load((OPENAPI / f"{spec}.yml").read_text())
    return _resolve(doc, doc["paths"][path]["put"]["requestBody"]["content"]["application/json"]["schema"])


def test_lifecycle_request_examples_are_accepted():
    with emu(start_time="2025-01-01T08:00:00Z") as h:
        api = Api(h)
        pid = catalog(api)
        cid = customer(api)
        api.ok(
            "POST",
            "/plans",
            {
                "plan_code": "basic-monthly",
                "name": "Basic",
                "recurring_price": 50,
                "interval": 1,
                "product_id": pid,
                "tax_id": VAT,
            },
        )
        api.ok(
            "POST",
            "/addons",
            {"addon_code": "Email-basic", "name": "Email", "product_id": pid, "price_brackets": [{"price": 50}]},
        )
        sid = api.ok(
            "POST", "/subscriptions", {"customer_id": cid, "plan": {"plan_code": "fibre-50"}, "starts_at": "2025-01-01"}
        )["subscription"]["subscription_id"]

        update = put_example("subscription", "/subscriptions/{subscription_id}")
        update.update(customer_id=cid, end_of_term=True)
        sub = api.ok("PUT", f"/subscriptions/{sid}", update)["subscription"]
        assert sub["reference_id"] == "bowmanfurniture" and sub["plan"]["plan_code"] == "fibre-50"
        changed = api.ok("GET", f"/subscriptions/{sid}/scheduledchanges")["subscription"]
        assert (changed["plan"]["plan_code"], [a["addon_code"] for a in changed["addons"]]) == (
            "basic-monthly",
            ["Email-basic"],
        )

        postpone = openapi_example("subscription", "/subscriptions/{subscription_id}/postpone")
        postpone["renewal_at"] = "2025-02-10"  # the example's 2016 date is before the renewal: not a postpone
        assert api.ok("POST", f"/subscriptions/{sid}/postpone", postpone)["subscription"]["next_billing_at"] == (
            "2025-02-10"
        )

        note_body = openapi_example("credit-notes", "/creditnotes")
        note_body["customer_id"] = cid
        for item in note_body["creditnote_items"]:
            item["tax_id"] = VAT
        note = api.ok("POST", "/creditnotes", note_body)["creditnote"]
        assert (note["total"], note["creditnote_items"][0]["code"]) == (115.0, "basic-monthly")

        invoice_id = api.ok("GET", f"/subscriptions/{sid}")["subscription"]["child_invoice_id"]  # 575.00
        credits = openapi_example("invoices", "/invoices/{invoice_id}/credits")
        credits["apply_creditnotes"][0].update(creditnote_id=note["creditnote_id"], amount_applied=15)
        applied = api.ok("POST", f"/invoices/{invoice_id}/credits", credits)["apply_creditnotes"][0]
        assert (applied["invoice_id"], applied["amount_applied"]) == (invoice_id, 15.0)
        to_invoices = openapi_example("credit-notes", "/creditnotes/{creditnote_id}/invoices")
        to_invoices["invoices"][0].update(invoice_id=invoice_id, amount_applied=50)
        assert (
            api.ok("POST", f"/creditnotes/{note['creditnote_id']}/invoices", to_invoices)["invoices"][0][
                "amount_applied"
            ]
            == 50.0
        )

        refund_note = openapi_example("refunds", "/creditnotes/{creditnote_id}/refunds")  # amount "20", a string
        refund = api.ok("POST", f"/creditnotes/{note['creditnote_id']}/refunds", refund_note)["refund"]
        assert (refund["amount"], refund["creditnote"]["balance_amount"]) == (20.0, 30.0)

        payment = api.ok(
            "POST",
            "/payments",
            {
                "customer_id": cid,
                "payment_mode": "cash",
                "amount": 510,
                "invoices": [{"invoice_id": invoice_id, "amount_applied": 510}],
            },
        )
        refund_payment = openapi_example("refunds", "/payments/{payment_id}/refunds")
        refund = api.ok("POST", f"/payments/{payment['payment']['payment_id']}/refunds", refund_payment)["refund"]
        assert refund["description"] == "Refund for discount Offer" and refund["creditnote"]["creditnote_id"]

        other = api.ok(
            "POST",
            "/invoices",
            {"customer_id": cid, "invoice_items": [{"product_id": pid, "price": 10, "tax_id": VAT}]},
        )["invoice"]
        writeoff = openapi_example("invoices", "/invoices/{invoice_id}/writeoff")  # {"reason": true}
        api.ok("POST", f"/invoices/{other['invoice_id']}/writeoff", writeoff)
        assert api.ok("GET", f"/invoices/{other['invoice_id']}")["invoice"]["write_off_amount"] == 11.5
