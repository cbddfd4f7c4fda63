"""One row's attempt, in a worker: check it can be sent, build its payload, skip it at zero calls when ZOHO holds
that payload already, look it up when an earlier create may have reached ZOHO (and adopt what is found), create or
update, and say what it came to as a claims.Outcome (the sweep's thread records it). A row's own failure never
raises: invalid data fails at once, a retryable error is given its next attempt (backoff with jitter), a parent
not ready waits for the parent's retry. An error that blocks the organization (rate limit, budget, credentials,
ZOHO unreachable) stops the whole run and hands the row back uncharged.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from datetime import timedelta

from zoho_pipeline.source.database import aware, utcnow
from zoho_pipeline.sync import claims, payloads
from zoho_pipeline.sync.entities.base import (
    EntitySpec,
    InvalidRow,
    ParentNotReady,
    Waiting,
    canonical_json,
    sendable,
    text_hash,
)
from zoho_pipeline.sync.report import STOP_AUTH, STOP_BUDGET, STOP_RATE_LIMITED, STOP_UNREACHABLE
from zoho_pipeline.sync.row_client import RowClient
from zoho_pipeline.sync.row_context import RowContext
from zoho_pipeline.zoho.errors import AUTH, BUDGET_EXHAUSTED, PERMANENT, RATE_LIMITED, ZohoError

log = logging.getLogger("zoho_pipeline.sync")

STOPPING_ERRORS = {RATE_LIMITED: STOP_RATE_LIMITED, BUDGET_EXHAUSTED: STOP_BUDGET, AUTH: STOP_AUTH}


def attempt(run, spec: EntitySpec, row: dict, parents) -> claims.Outcome:
    """One attempt at one claimed row; never raises. `run`: the engine's run (its client, catalog, settings and
    mode; `stopped`, and `stop` for an error that blocks the organization)."""
    if run.stopped:
        return claims.released(row)
    started = time.monotonic()
    client = RowClient(run.client)
    zoho_id = row[spec.zoho_id_column]
    was_in_doubt = bool(row["zoho_create_in_doubt"])
    ctx = RowContext(run.catalog, parents, spec, settings=run.settings, in_doubt=was_in_doubt)
    ctx.previous_payload = lambda: _previous_payload(run.engine, spec, row)
    action = "update" if zoho_id else "create"
    sending = None  # the payload's canonical JSON, once built

    def acted() -> str | None:
        """What a failed attempt keeps as the last accepted: the payload, if a lifecycle step of it acted."""
        return sending if ctx.acted else None

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    def failed(code, message, retry_at, count_attempt, in_doubt, new_zoho_id) -> claims.Outcome:
        outcome = claims.failed(
            row,
            action=action,
            error_code=code,
            error=message,
            retry_at=retry_at,
            count_attempt=count_attempt,
            max_attempts=run.settings.max_attempts,
            in_doubt=in_doubt or ctx.acted,
            zoho_id=new_zoho_id,
            api_calls=client.calls,
            duration_ms=elapsed_ms(),
            payload=acted(),
        )
        log.warning(
            "row %s entity=%s id=%s label=%r code=%s error=%s",
            outcome.outcome,
            spec.name,
            row["id"],
            spec.label(row),
            code,
            message,
        )
        return outcome

    try:
        sendable(row)
        payload = spec.build(row, ctx)
        canonical = sending = canonical_json(payload)  # hashed, and stored as the accepted payload once sent
        digest = text_hash(canonical)
        if spec.holds(row, digest, run.mode):
            return claims.succeeded(row, zoho_id=zoho_id, payload_hash=digest, action="skip")
        if zoho_id:
            # an update may replace the entity (a cancelled subscription comes back as a new one): its new id
            zoho_id = spec.update(client, zoho_id, payload, row, ctx) or zoho_id
        else:
            found = spec.lookup(client, payload, row, ctx) if was_in_doubt else None
            if found:
                log.info(
                    "adopted entity=%s id=%s label=%r zoho_id=%s (an earlier create reached ZOHO)",
                    spec.name,
                    row["id"],
                    spec.label(row),
                    found,
                )
                zoho_id, action = found, "adopt"
                ctx.adopted = True  # what the lost create carried may be older than the row: send it now
                spec.update(client, zoho_id, payload, row, ctx)
            else:
                zoho_id = spec.create(client, payload, row, ctx)
        return claims.succeeded(
            row,
            zoho_id=zoho_id,
            payload_hash=digest,
            action=action,
            api_calls=client.calls,
            duration_ms=elapsed_ms(),
            payload=canonical,
        )
    except InvalidRow as exc:
        return failed("invalid", str(exc), None, False, was_in_doubt, ctx.new_zoho_id)
    except Waiting as exc:  # due on a later day (a cancellation dated in the future): no attempt is charged
        log.info("row waits entity=%s id=%s until=%s: %s", spec.name, row["id"], exc.until, exc)
        return claims.waiting(
            row,
            action=action,
            reason=str(exc),
            until=exc.until,
            in_doubt=was_in_doubt,
            api_calls=client.calls,
            duration_ms=elapsed_ms(),
        )
    except ParentNotReady as exc:  # try again just after the parent's own next attempt
        retry_at = (
            aware(exc.retry_at) + timedelta(seconds=1)
            if exc.retry_at
            else (utcnow() + timedelta(seconds=run.settings.backoff_max_s))
        )
        return failed("parent_failed", str(exc), retry_at, False, was_in_doubt, None)
    except ZohoError as exc:
        if exc.kind in STOPPING_ERRORS or exc.unreachable:  # the organization is blocked: stop, charge no row
            run.stop(STOP_UNREACHABLE if exc.unreachable else STOPPING_ERRORS[exc.kind], str(exc))
            if ctx.new_zoho_id:  # a step of this attempt created the entity: keep its id, finish next time
                retry_at = utcnow() + timedelta(seconds=_backoff(run.settings, 1))
                return failed(exc.error_code, str(exc), retry_at, True, True, ctx.new_zoho_id)
            # a lifecycle's earlier step may have acted: the next attempt reads ZOHO's state first
            return dataclasses.replace(
                claims.released(row), api_calls=client.calls, in_doubt=client.calls > 1, payload=acted()
            )
        in_doubt = was_in_doubt or exc.may_have_acted  # a lifecycle action in doubt is read back first
        retry_at = (
            None
            if exc.kind == PERMANENT
            else (utcnow() + timedelta(seconds=_backoff(run.settings, (row["zoho_attempts"] or 0) + 1)))
        )
        return failed(exc.error_code, str(exc), retry_at, True, in_doubt, ctx.new_zoho_id)
    except LookupError as exc:  # the catalog could not find what every row needs (e.g. no VAT tax)
        return failed("setup", str(exc), None, False, was_in_doubt, None)
    except Exception as exc:  # a bug or odd data must fail this row alone, with its reason, and retry
        log.exception("unexpected error entity=%s id=%s", spec.name, row["id"])
        retry_at = utcnow() + timedelta(seconds=_backoff(run.settings, (row["zoho_attempts"] or 0) + 1))
        return failed(
            "internal",
            f"{type(exc).__name__}: {exc}",
            retry_at,
            True,
            True,  # whatever was sent may have acted
            ctx.new_zoho_id,
        )


def _previous_payload(engine, spec, row) -> dict | None:
    """The payload ZOHO last accepted for the row (None for rows synced before the payload store): what a
    lifecycle compares with to send only what changed. One read by key, only when an entity asks."""
    with engine.connect() as conn:
        return payloads.load(conn, spec.name, [row["id"]]).get(str(row["id"]))


def _backoff(settings, attempts: int) -> float:
    delay = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** max(0, attempts - 1))
    return delay * random.uniform(0.75, 1.25)
