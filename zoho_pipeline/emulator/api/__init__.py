"""Route table: (method, path template under /billing/v1, handler). Handlers take a Ctx, return (status, body)."""

from __future__ import annotations

from . import catalog, creditnotes, customers, invoice_actions, invoices, payments, subscription_actions, subscriptions

ROUTES = [
    ("GET", "/organizations", catalog.list_organizations),
    ("GET", "/settings/taxes", catalog.list_taxes),
    ("POST", "/products", catalog.create_product),
    ("GET", "/products", catalog.list_products),
    ("GET", "/products/{product_id}", catalog.get_product),
    ("PUT", "/products/{product_id}", catalog.update_product),
    ("DELETE", "/products/{product_id}", catalog.delete_product),
    ("POST", "/products/{product_id}/markasactive", catalog.product_active),
    ("POST", "/products/{product_id}/markasinactive", catalog.product_inactive),
    ("POST", "/plans", catalog.create_plan),
    ("GET", "/plans", catalog.list_plans),
    ("GET", "/plans/{plan_code}", catalog.get_plan),
    ("PUT", "/plans/{plan_code}", catalog.update_plan),
    ("DELETE", "/plans/{plan_code}", catalog.delete_plan),
    ("POST", "/plans/{plan_code}/markasactive", catalog.plan_active),
    ("POST", "/plans/{plan_code}/markasinactive", catalog.plan_inactive),
    ("POST", "/addons", catalog.create_addon),
    ("GET", "/addons", catalog.list_addons),
    ("GET", "/addons/{addon_code}", catalog.get_addon),
    ("PUT", "/addons/{addon_code}", catalog.update_addon),
    ("DELETE", "/addons/{addon_code}", catalog.delete_addon),
    ("POST", "/addons/{addon_code}/markasactive", catalog.addon_active),
    ("POST", "/addons/{addon_code}/markasinactive", catalog.addon_inactive),
    ("POST", "/customers", customers.create_customer),
    ("GET", "/customers", customers.list_customers),
    ("GET", "/customers/{customer_id}", customers.get_customer),
    ("PUT", "/customers/{customer_id}", customers.update_customer),
    ("DELETE", "/customers/{customer_id}", customers.delete_customer),
    ("POST", "/customers/{customer_id}/markasactive", customers.customer_active),
    ("POST", "/customers/{customer_id}/markasinactive", customers.customer_inactive),
    ("POST", "/subscriptions", subscriptions.create_subscription),
    ("GET", "/subscriptions", subscriptions.list_subscriptions),
    ("GET", "/subscriptions/{subscription_id}", subscriptions.get_subscription),
    ("PUT", "/subscriptions/{subscription_id}", subscriptions.update_subscription),
    ("DELETE", "/subscriptions/{subscription_id}", subscriptions.delete_subscription),
    ("POST", "/subscriptions/{subscription_id}/cancel", subscription_actions.cancel_subscription),
    ("POST", "/subscriptions/{subscription_id}/reactivate", subscription_actions.reactivate_subscription),
    ("POST", "/subscriptions/{subscription_id}/postpone", subscription_actions.postpone_subscription),
    ("GET", "/subscriptions/{subscription_id}/scheduledchanges", subscription_actions.get_scheduled_changes),
    ("DELETE", "/subscriptions/{subscription_id}/scheduledchanges", subscription_actions.delete_scheduled_changes),
    ("POST", "/invoices", invoices.create_invoice),
    ("GET", "/invoices", invoices.list_invoices),
    ("GET", "/invoices/{invoice_id}", invoices.get_invoice),
    ("PUT", "/invoices/{invoice_id}", invoices.update_invoice),
    ("DELETE", "/invoices/{invoice_id}", invoices.delete_invoice),
    ("POST", "/invoices/{invoice_id}/void", invoice_actions.void_invoice),
    ("POST", "/invoices/{invoice_id}/converttoopen", invoice_actions.convert_to_open),
    ("POST", "/invoices/{invoice_id}/writeoff", invoice_actions.write_off),
    ("POST", "/invoices/{invoice_id}/cancelwriteoff", invoice_actions.cancel_write_off),
    ("POST", "/invoices/{invoice_id}/credits", invoice_actions.apply_credits),
    ("POST", "/payments", payments.create_payment),
    ("GET", "/payments", payments.list_payments),
    ("GET", "/payments/{payment_id}", payments.get_payment),
    ("PUT", "/payments/{payment_id}", payments.update_payment),
    ("DELETE", "/payments/{payment_id}", payments.delete_payment),
    ("POST", "/payments/{payment_id}/refunds", payments.refund_payment),
    ("GET", "/payments/{payment_id}/refunds", payments.list_payment_refunds),
    ("GET", "/creditnotes/refunds/{refund_id}", creditnotes.get_refund),
    ("POST", "/creditnotes", creditnotes.create_creditnote),
    ("GET", "/creditnotes", creditnotes.list_creditnotes),
    ("GET", "/creditnotes/{creditnote_id}", creditnotes.get_creditnote),
    ("DELETE", "/creditnotes/{creditnote_id}", creditnotes.delete_creditnote),
    ("POST", "/creditnotes/{creditnote_id}/void", creditnotes.void_creditnote),
    ("POST", "/creditnotes/{creditnote_id}/converttoopen", creditnotes.open_creditnote),
    ("POST", "/creditnotes/{creditnote_id}/invoices", creditnotes.apply_to_invoices),
    ("POST", "/creditnotes/{creditnote_id}/refunds", creditnotes.refund_creditnote),
    ("GET", "/creditnotes/{creditnote_id}/refunds", creditnotes.list_creditnote_refunds),
]


def match(method: str, path: str):
    """Return (template, handler, params) or (None, None, {}) ; 'literal' segments win over placeholders."""
    parts = [p for p in path.strip("/").split("/") if p]
    best, allowed = None, False
    for m, template, handler in ROUTES:
        tparts = template.strip("/").split("/")
        if len(tparts) != len(parts):
            continue
        params, literal = {}, 0
        for t, p in zip(tparts, parts):
            if t.startswith("{"):
                params[t[1:-1]] = p
            elif t == p:
                literal += 1
            else:
                break
        else:
            if m != method:
                allowed = True
                continue
            if best is None or literal > best[0]:
                best = (literal, template, handler, params)
    if best is None:
        return None, None, {"__method_mismatch__": allowed}
    return best[1], best[2], best[3]
