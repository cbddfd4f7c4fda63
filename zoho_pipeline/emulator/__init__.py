"""ZOHO Billing emulator: a real HTTP server keeping the API's contract, with limits and fault injection.

Written from the contract (../shared/reference/zoho-billing-api.md, ZOHO's OpenAPI, recorded responses); it imports
nothing from ``zoho_pipeline.zoho`` or ``zoho_pipeline.sync``. Standard library only.

    from zoho_pipeline.emulator.server import EmulatorConfig, start_emulator
    h = start_emulator(EmulatorConfig(port=0, seed=7, start_time="2025-01-01T08:00:00Z"))
    h.url                 # accounts (/oauth/v2/token) and API (/billing/v1/...) on one port
    h.stats(); h.faults(); h.set_faults(fail_rate=0.1); h.reset(); h.stop()
    h.clock(); h.move_clock(advance_days=31)   # ZOHO's clock; a move runs the renewals etc. that fell due
    h.store.customers     # id -> stored entity; also products, plans (by plan_code), addons (by addon_code),
                          # subscriptions, invoices, payments, creditnotes, refunds, taxes, schedule;
                          # h.store.lock guards them

Modules: ``server`` (HTTP plumbing, auth, handle), ``admin`` (/__emulator__/*), ``clock`` and ``schedule`` (ZOHO's
time and the work that falls due), ``tokens`` (OAuth grant, mint limit), ``limits`` (per-minute window + lockout,
daily budget, in-flight cap), ``faults`` (run-time settings, seeded randomness), ``state`` (store + JSON state
file), ``errors`` (ApiError, REFUSALS), ``api`` (one module per ZOHO module, and the route table).
docs/emulator.md is the contract: the clock, the fields that link invoices to subscriptions, the error codes.

Behaviour worth knowing:
- ``GET /organizations`` needs a token but no organization header (it is how a client finds the id).
- ``POST /__emulator__/reset`` wipes entities, stats, limit windows and the token-mint history; issued access tokens,
  all settings and the clock stay.
- A 429 storm (``storm_rate_limit_per_minute`` for ``storm_seconds``) answers over-limit calls with 429 but does not
  start the lockout; only the real per-minute limit does.
- Subscriptions raise invoices as ZOHO's do: one at once for a subscription that starts today (none for a backdated
  start unless ``create_backdated_invoice``), one per renewal when the clock passes ``next_billing_at``. The clock
  stands still between moves, so nothing renews unless a test (or an operator) moves it.
"""
