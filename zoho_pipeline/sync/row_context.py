"""What the engine hands a row's mapping (`RowContext`: the catalog, its parents' ZOHO ids, the policies, whether
an earlier attempt may have acted; `parent_infos` reads the parents), and how the sweep's thread collects finished
rows (`Finished`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import timedelta

from zoho_pipeline.source.database import utcnow
from zoho_pipeline.sync import claims
from zoho_pipeline.sync.entities.base import EntitySpec, InvalidRow, ParentInfo, ParentNotReady
from zoho_pipeline.sync.settings import SyncSettings


class Finished:
    """Outcomes of the rows workers have finished. The sweep's thread waits for several at once, so it wakes
    once per chunk rather than once per row."""

    def __init__(self):
        self._cond = threading.Condition()
        self._futures: list[Future] = []
        self._wanted = 1

    def add(self, future: Future) -> None:
        with self._cond:
            self._futures.append(future)
            if len(self._futures) >= self._wanted:
                self._cond.notify()

    def take(self, at_least: int, timeout: float) -> list[claims.Outcome]:
        """Those finished once `at_least` are, or when `timeout` passes (then possibly fewer, or none)."""
        with self._cond:
            self._wanted = at_least
            self._cond.wait_for(lambda: len(self._futures) >= at_least, timeout)
            futures, self._futures = self._futures, []
        return [future.result() for future in futures]


class RowContext:
    """What a mapping may ask of the engine: the catalog and its parents' ZOHO ids."""

    def __init__(
        self, catalog, parents: dict, spec: EntitySpec, dry_run: bool = False, settings=None, in_doubt: bool = False
    ):
        self.catalog, self._parents, self._spec, self._dry_run = catalog, parents, spec, dry_run
        self.settings = settings or SyncSettings()  # the policies, ZOHO_RECURRING_LINK_WAIT_H
        self.new_zoho_id: str | None = None
        self.adopted = False  # the entity was found after a create in doubt, and is being brought up to date
        # an earlier attempt at this row may have acted in ZOHO (a lost answer, a run that died): a lifecycle action
        # reads ZOHO's state before it acts again
        self.in_doubt = in_doubt
        # a lifecycle step of this attempt may have acted in ZOHO (a closure's cancels): if a later step fails, the
        # payload is kept as the last accepted and the row left in doubt, so what follows knows where ZOHO may be
        self.acted = False
        self.previous_payload: Callable[[], dict | None] = lambda: None  # what ZOHO last accepted, read on demand

    @property
    def dry_run(self) -> bool:
        return self._dry_run

    def parent_zoho_id(self, entity: str, source_id) -> str:
        info = self._parents.get((entity, str(source_id)))
        if info and info.zoho_id:
            return info.zoho_id
        if self._dry_run and info and info.error is None:
            return f"<new {entity[:-1]}>"
        singular = entity[:-1]
        if info is None or info.error == "does not exist":
            raise InvalidRow(f"{singular}_id", f"{singular} {source_id} does not exist")
        if info.status == claims.SYNCING:
            raise ParentNotReady(
                f"parent {singular} {info.label} is being synced by another run", utcnow() + timedelta(seconds=60)
            )
        reason = info.error or f"has not synced yet (status {info.status or 'pending'})"
        raise ParentNotReady(f"parent {singular} {info.label} failed: {reason}", info.next_attempt_at)

    def remember_zoho_id(self, zoho_id: str) -> None:
        """Called by a mapping right after a create, so a check that then fails the row keeps the id."""
        self.new_zoho_id = zoho_id


def parent_infos(engine, spec: EntitySpec, ids) -> dict[str, ParentInfo]:
    """The parents `ids` of entity `spec` as a row's mapping sees them (RowContext.parents): each one's ZOHO id,
    status, last error and next attempt; a parent missing from the source says so."""
    ids = list(ids)
    c = spec.table.c
    found = {pid: ParentInfo(spec.name, pid, pid, None, None, "does not exist") for pid in ids}
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            query = spec.select().where(c.id.in_(ids[start : start + 500]))
            for row in conn.execute(query).mappings():
                row = dict(row)
                found[str(row["id"])] = ParentInfo(
                    spec.name,
                    str(row["id"]),
                    spec.label(row),
                    row[spec.zoho_id_column],
                    row["zoho_sync_status"],
                    row["zoho_last_sync_error"],
                    row["zoho_next_attempt_at"],
                )
    return found
