"""ZOHO Billing emulator: a real HTTP server keeping the API's contract, with limits and fault injection.

Written from the contract (../shared/reference/zoho-billing-api.md, ZOHO's OpenAPI, recorded responses); it imports
nothing from ``zoho_pipeline.zoho`` or ``zoho_pipeline.sync``. Standard library only.

    from zoho_pipeline.emulator.server import EmulatorConfig, start_emulator
    h = start_emulator(EmulatorConfig(port=0, seed=7))
    h.url                 # accounts (/oauth/v2/token) and API (/billing/v1/...) on one port
    h.stats(); h.faults(); h.set_faults(fail_rate=0.1); h.reset(); h.stop()
    h.store.customers     # id -> stored entity; also products, plans (by plan_code), addons (by addon_code),
                          # subscriptions, invoices, payments, creditnotes, refunds, taxes; h.store.lock guards them

Modules: ``server`` (HTTP plumbing, auth, admin, handle), ``tokens`` (OAuth grant, mint limit), ``limits``
(per-minute window + lockout, daily budget, in-flight cap), ``faults`` (run-time settings, seeded randomness),
``state`` (store + JSON state file), ``api`` (one module per ZOHO module, and the route table).

Behaviour worth knowing:
- ``GET /organizations`` needs a token but no organization header (it is how a client finds the id).
- ``POST /__emulator__/reset`` wipes entities, stats, limit windows and the token-mint history; issued access tokens
  and all settings stay.
- A 429 storm (``storm_rate_limit_per_minute`` for ``storm_seconds``) answers over-limit calls with 429 but does not
  start the lockout; only the real per-minute limit does.
- Subscriptions do not raise invoices by themselves (``child_invoice_id`` is ""), so invoice counts stay exactly what
  the client created.
"""
