"""4. Finding work at scale: Postgres with N customers (and proportionate services, invoices, payments), 0.1 % dirty.

Data is generated inside Postgres (`INSERT ... SELECT generate_series`, md5-derived uuids so children can name
their parents without a join), after the business tables are created and the pipeline's migrations have run
(so the partial `ix_<table>_zoho_due` indexes exist). Rows are written already synced (ZOHO id, status
`synced`, source version = updated_at) except 0.1 %: half never synced, half changed since their last sync. That
is the state one UPDATE after a full backfill would leave, without rewriting millions of rows; then VACUUM
ANALYZE. Timed: the engine's own `find_due` (limit = batch size) and `count_due`, per entity, median of repeats;
`EXPLAIN (ANALYZE, BUFFERS)` of find_due must name the partial index.
"""

from __future__ import annotations

import statistics
import time

import sqlalchemy as sa
from bench_common import metric, pg_available, pg_database

from zoho_pipeline.source import business
from zoho_pipeline.source.database import make_engine
from zoho_pipeline.source.migrate import upgrade
from zoho_pipeline.sync import claims, due_rows
from zoho_pipeline.sync.entities import SPECS
from zoho_pipeline.sync.settings import ENTITY_ORDER

SECTION = "4 find work"
# per customer, as the seeded demo generates them (2000 customers: 2394 services, 5738 invoices, 5359 payments)
PER_CUSTOMER = {"customer_services": 1.2, "customer_invoices": 2.87, "payment_transactions": 2.68}
DIRTY_EVERY = 2000  # g % 2000 = 0: never synced; g % 2000 = 1000: changed since synced → 0.1 % dirty

SYNC_STATE = f"""
    CASE WHEN g % {DIRTY_EVERY} = 0 THEN NULL ELSE 'z' || g END,
    CASE WHEN g % {DIRTY_EVERY} = 0 THEN NULL ELSE 'synced' END,
    CASE WHEN g % {DIRTY_EVERY} = 0 THEN NULL ELSE ts END,
    CASE WHEN g % {DIRTY_EVERY} = 0 THEN NULL ELSE md5(g::text) || md5((g + 1)::text) END,
    CASE WHEN g % {DIRTY_EVERY} = 0 THEN NULL WHEN g % {DIRTY_EVERY} = {DIRTY_EVERY // 2} THEN ts - interval '1 day' ELSE ts END,
    CASE WHEN g % {DIRTY_EVERY} = 0 THEN NULL ELSE 0 END,
    CASE WHEN g % {DIRTY_EVERY} = 0 THEN NULL ELSE false END
"""


def _state_cols(id_col: str) -> str:
    return (
        f"{id_col}, zoho_sync_status, zoho_last_synced_at, zoho_payload_hash, zoho_source_version, "
        "zoho_attempts, zoho_create_in_doubt"
    )


def _ts(expr: str) -> str:
    return f"CROSS JOIN LATERAL (SELECT timestamptz '2024-01-01 00:00:00+00' + ({expr}) * interval '1 second' AS ts) t"


def generate(url: str, n: int, log) -> dict:
    engine = make_engine(url)
    business.create_business_tables(engine)
    engine.dispose()
    upgrade(url)
    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    counts = {"service_packages": 11, "customers": n}
    for table, per in PER_CUSTOMER.items():
        counts[table] = int(n * per)
    s, inv, pay = counts["customer_services"], counts["customer_invoices"], counts["payment_transactions"]
    statements = [
        (
            "service_packages",
            f"""
        INSERT INTO service_packages (id, name, description, monthly_price, is_active, created_at, updated_at,
            zoho_plan_code, zoho_sync_status, zoho_last_synced_at, zoho_payload_hash, zoho_source_version,
            zoho_attempts, zoho_create_in_doubt)
        SELECT md5('p' || g)::uuid, 'Fibre ' || g || '0/' || g || '0 Mbps', 'Uncapped fibre', 499 + g * 100, true,
            ts, ts, 'isp-' || left(md5('p' || g), 12), 'synced', ts, md5(g::text) || md5(g::text), ts, 0, false
        FROM generate_series(1, 11) g {_ts("g")}""",
        ),
        (
            "customers",
            f"""
        INSERT INTO customers (id, email, first_name, last_name, phone, account_type, company_name, vat_number,
            address_line1, address_line2, suburb, city, province, postal_code, country, status, created_at,
            updated_at, {_state_cols("zoho_billing_customer_id")})
        SELECT md5('c' || g)::uuid, 'customer' || g || '@bench.example.co.za', 'Thandi', 'Nkosi ' || g,
            '+2782' || lpad((g % 10000000)::text, 7, '0'),
            CASE WHEN g % 5 = 0 THEN 'business' ELSE 'personal' END,
            CASE WHEN g % 5 = 0 THEN 'Nkosi ' || g || ' Logistics CC' END, NULL,
            (g % 250 + 1) || ' Jan Smuts Avenue', NULL, 'Sandton', 'Johannesburg', 'Gauteng', '2196', 'ZA',
            'active', ts, ts, {SYNC_STATE}
        FROM generate_series(1, {n}) g {_ts("g")}""",
        ),
        (
            "customer_services",
            f"""
        INSERT INTO customer_services (id, customer_id, package_id, status, monthly_price, activation_date,
            cancellation_date, installation_address, created_at, updated_at, {_state_cols("zoho_subscription_id")})
        SELECT md5('s' || g)::uuid, md5('c' || ((g - 1) % {n} + 1))::uuid, md5('p' || (g % 11 + 1))::uuid,
            CASE WHEN g % 10 = 0 THEN 'cancelled' ELSE 'active' END, 699, date '2024-02-01', NULL,
            '1 Jan Smuts Avenue, Sandton', ts, ts, {SYNC_STATE}
        FROM generate_series(1, {s}) g {_ts("g")}""",
        ),
        (
            "customer_invoices",
            f"""
        INSERT INTO customer_invoices (id, customer_id, service_id, invoice_number, invoice_type, invoice_date,
            due_date, line_items, subtotal, vat_amount, total_amount, status, created_at, updated_at,
            {_state_cols("zoho_billing_invoice_id")})
        SELECT md5('i' || g)::uuid, md5('c' || ((g - 1) % {n} + 1))::uuid, md5('s' || ((g - 1) % {s} + 1))::uuid,
            'INV-' || lpad(g::text, 9, '0'),
            (ARRAY['recurring','recurring','recurring','installation','pro_rata','equipment'])[g % 6 + 1],
            date '2025-06-01' + (g % 180), date '2025-06-08' + (g % 180),
            '[{{"description": "Fibre 50/50 Mbps", "quantity": 1, "unit_price": 699.0, "amount": 699.0}}]'::jsonb,
            699, 104.85, 803.85, CASE WHEN g % 4 = 0 THEN 'sent' ELSE 'paid' END, ts, ts, {SYNC_STATE}
        FROM generate_series(1, {inv}) g {_ts("g")}""",
        ),
        (
            "payment_transactions",
            f"""
        INSERT INTO payment_transactions (id, transaction_id, customer_id, invoice_id, amount, currency,
            payment_method, status, completed_at, created_at, updated_at, {_state_cols("zoho_payment_id")})
        SELECT md5('t' || g)::uuid, 'NC-' || lpad(g::text, 10, '0'), md5('c' || ((g - 1) % {n} + 1))::uuid,
            md5('i' || ((g - 1) % {inv} + 1))::uuid, 803.85, 'ZAR', 'netcash',
            CASE WHEN g % 12 = 0 THEN 'failed' ELSE 'completed' END, ts, ts, ts, {SYNC_STATE}
        FROM generate_series(1, {pay}) g {_ts("g")}""",
        ),
    ]
    timings = {}
    with engine.connect() as conn:
        conn.exec_driver_sql("SET session_replication_role = replica")  # skip FK triggers: ids are consistent
        conn.exec_driver_sql("SET synchronous_commit = off")
        conn.exec_driver_sql("SET maintenance_work_mem = '512MB'")
        for table, sql in statements:
            t0 = time.perf_counter()
            conn.exec_driver_sql(sql.replace("%", "%%"))  # psycopg2 paramstyle
            timings[table] = round(time.perf_counter() - t0, 1)
            log(f"  inserted {counts[table]:,} {table} in {timings[table]}s")
        t0 = time.perf_counter()
        conn.exec_driver_sql("VACUUM ANALYZE")
        timings["vacuum_analyze"] = round(time.perf_counter() - t0, 1)
        size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    engine.dispose()
    return dict(rows=counts, total_rows=sum(counts.values()), insert_s=timings, database_bytes=size)


def _time(fn, repeats: int, conn) -> tuple[float | None, float | None, object]:
    """(first, median) in ms and the last result; (None, None, None) when the statement timed out."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        try:
            result = fn()
        except sa.exc.OperationalError as exc:  # statement_timeout
            if "statement timeout" not in str(exc):
                raise
            conn.rollback()
            return None, None, None
        times.append((time.perf_counter() - t0) * 1000)
    return times[0], statistics.median(times), result


def _explain(conn, statement, dialect, analyze: bool) -> list[str]:
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    opts = "(ANALYZE, BUFFERS) " if analyze else ""
    return [r[0] for r in conn.exec_driver_sql(f"EXPLAIN {opts}{sql}".replace("%", "%%"))]


def measure(url: str, batch: int, repeats: int, timeout_s: float, entities=ENTITY_ORDER, jit: bool = True) -> dict:
    engine = make_engine(url)
    out = {}
    now = claims.utcnow()
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SET statement_timeout = '{int(timeout_s * 1000)}ms'")
        if not jit:
            conn.exec_driver_sql("SET jit = off")
        conn.commit()
        for name in entities:
            spec = SPECS[name]
            kw = dict(mode="due", now=now, run_id="bench", stale_after_s=120.0)

            def find():
                return due_rows.find_due(conn, spec, limit=batch, **kw)  # noqa: B023 - called at once, in this loop

            def count():
                return due_rows.count_due(conn, spec, now=now)  # noqa: B023 - called at once, in this loop

            first, median, found = _time(find, repeats, conn)
            c_first, c_median, due = _time(count, repeats, conn)
            conn.rollback()
            found = None if found is None else len(found)
            query = (
                spec.select()
                .where(due_rows.due_filter(spec, **kw), due_rows.scope_filter(spec))
                .order_by(spec.table.c.id)
                .limit(batch)
            )
            cquery = (
                sa.select(sa.func.count())
                .select_from(spec.table)
                .where(
                    due_rows.due_filter(spec, mode="due", now=now, run_id=None, stale_after_s=120.0),
                    due_rows.scope_filter(spec),
                )
            )
            plan = _explain(conn, query, engine.dialect, analyze=median is not None)
            cplan = _explain(conn, cquery, engine.dialect, analyze=c_median is not None)
            conn.rollback()
            index = f"ix_{spec.table.name}_zoho_due"
            rows_in_table = conn.exec_driver_sql(
                f"SELECT reltuples::bigint FROM pg_class WHERE relname = '{spec.table.name}'"
            ).scalar()
            out[name] = dict(
                found=found,
                due=due,
                find_first_ms=_r(first),
                find_median_ms=_r(median),
                count_first_ms=_r(c_first),
                count_median_ms=_r(c_median),
                table_rows=rows_in_table,
                uses_due_index=any(index in line for line in plan),
                count_uses_due_index=any(index in line for line in cplan),
                plan=plan,
                count_plan=cplan,
            )
    engine.dispose()
    return out


def _r(v):
    return None if v is None else round(v, 2)


PROPOSED_INDEX = "CREATE INDEX bench_payment_transactions_invoice_id ON payment_transactions (invoice_id)"


def run(args, log=print) -> tuple[list[dict], dict]:
    problem = pg_available()
    if problem:
        return [metric(SECTION, "find work (Postgres)", None, note=f"skipped: Postgres unavailable ({problem})")], {
            "skipped": problem
        }
    sizes = [args.findwork_customers] + ([10 * args.findwork_customers] if args.scale_10m else [])
    rows, raw = [], {}
    if not args.scale_10m:
        raw["10x_skipped"] = "pass --scale-10m (about 10x the disk, ~10x the generation time on this machine)"
    for n in sizes:
        with pg_database(keep=args.keep_db) as url:
            log(f"[4] generating {n:,} customers and proportionate rows in Postgres ...")
            gen = generate(url, n, log)
            res = measure(url, args.batch_size, args.findwork_repeats, args.findwork_timeout_s)
            fixed = None
            if args.findwork_proposed_index:
                engine = make_engine(url, isolation_level="AUTOCOMMIT")
                with engine.connect() as conn:
                    t0 = time.perf_counter()
                    conn.exec_driver_sql(PROPOSED_INDEX)
                    conn.exec_driver_sql("ANALYZE payment_transactions")
                    index_s = time.perf_counter() - t0
                engine.dispose()
                fixed = measure(url, args.batch_size, args.findwork_repeats, args.findwork_timeout_s, ["payments"])
                fixed["index_build_s"] = round(index_s, 1)
                fixed["jit_off"] = measure(
                    url, args.batch_size, args.findwork_repeats, args.findwork_timeout_s, jit=False
                )
        raw[str(n)] = dict(generation=gen, entities=res, with_proposed_index=fixed)
        total = gen["total_rows"]
        timeout_ms = args.findwork_timeout_s * 1000
        for name, r in res.items():
            slow = r["find_median_ms"] is None
            rows.append(
                metric(
                    SECTION,
                    f"{name}: find_due ({total / 1e6:.2f} M rows total)",
                    timeout_ms if slow else r["find_median_ms"],
                    "ms",
                    100,
                    "<=",
                    note=(
                        f"TIMED OUT at {timeout_ms:.0f} ms"
                        if slow
                        else f"{r['found']} found, {r['due']} due; first call {r['find_first_ms']:.1f} ms"
                    )
                    + f"; due index: {'yes' if r['uses_due_index'] else 'no'}"
                    + (" (tiny table: seq scan)" if (r["table_rows"] or 0) < 1000 else ""),
                )
            )
        if fixed:
            f = fixed["payments"]
            slow = f["find_median_ms"] is None
            rows.append(
                metric(
                    SECTION,
                    "payments: find_due + proposed index on payment_transactions(invoice_id)",
                    timeout_ms if slow else f["find_median_ms"],
                    "ms",
                    100,
                    "<=",
                    note=f"index built in {fixed['index_build_s']}s; "
                    + ("TIMED OUT" if slow else f"{f['found']} found, {f['due']} due"),
                )
            )
            jo = fixed["jit_off"]
            finds = [r["find_median_ms"] for r in jo.values()]
            counts_jo = [r["count_median_ms"] for r in jo.values()]
            rows.append(
                metric(
                    SECTION,
                    "find_due, slowest entity, + index + SET jit = off [proposed]",
                    timeout_ms if None in finds else max(finds),
                    "ms",
                    100,
                    "<=",
                )
            )
            rows.append(
                metric(
                    SECTION,
                    "count_due, slowest entity, + index + SET jit = off [proposed]",
                    timeout_ms if None in counts_jo else max(counts_jo),
                    "ms",
                    100,
                    "<=",
                    note="JIT compiles the count (planner over-estimates the due rows): "
                    "jit off for the engine's connections",
                )
            )
        counts = [r["count_median_ms"] for r in res.values()]
        worst_count = timeout_ms if None in counts else max(counts)
        rows.append(
            metric(
                SECTION,
                f"count_due, slowest entity ({total / 1e6:.2f} M rows)",
                worst_count,
                "ms",
                100,
                "<=",
                note="due index used on every table ≥ 1000 rows"
                if all(r["count_uses_due_index"] for r in res.values() if (r["table_rows"] or 0) >= 1000)
                else "NOT all tables ≥ 1000 rows use the due index",
            )
        )
        big = [r for r in res.values() if (r["table_rows"] or 0) >= 1000]
        rows.append(
            metric(
                SECTION,
                "EXPLAIN: find_due uses ix_<table>_zoho_due (tables ≥ 1000 rows)",
                int(all(r["uses_due_index"] for r in big)),
                "bool",
                1,
                "==",
            )
        )
    if not args.scale_10m:
        rows.append(
            metric(
                SECTION, f"{10 * args.findwork_customers:,} customers", None, note="skipped: pass --scale-10m to run it"
            )
        )
    return rows, raw


def index_lines(raw: dict) -> list[str]:
    """The EXPLAIN lines that name an index, per size and entity (printed under the table)."""
    out = []
    for size, data in raw.items():
        if not isinstance(data, dict) or "entities" not in data:
            continue
        for name, r in data["entities"].items():
            lines = [ln.strip() for ln in r["plan"] if "Index" in ln or "Execution Time" in ln or "Seq Scan" in ln]
            out.append(f"  [{int(size):,} customers] {name}:")
            out += [f"      {ln}" for ln in lines[:6]]
    return out
