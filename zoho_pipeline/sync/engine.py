"""The engine: find due rows, claim them, sync parents first, call ZOHO, record every outcome. (Being written.)"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date

from zoho_pipeline.sync.report import RunReport
from zoho_pipeline.sync.settings import ENTITY_ORDER, SyncSettings


def run_sync(
    source_engine,
    client,
    settings: SyncSettings,
    *,
    entities: Sequence[str] = ENTITY_ORDER,
    mode: str = "due",
    months: tuple[date, date] | None = None,
    ids: Mapping[str, Sequence[str]] | None = None,
    dry_run: bool = False,
    run_id: str | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunReport:
    raise NotImplementedError
