"""The one monthly partitions definition (invoices by invoice_date, payments by completed_at) and how a run's
partitions become the engine's date range.

A run always has a partition or a range of them: Dagster cannot run a partitioned asset whose partitioned parent
has history without one. The first month also takes anything older than the partitions' start and the last (the
open current month) anything newer, so a run over every partition covers every row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import dagster as dg

from zoho_pipeline.env import text

DEFAULT_START = "2024-01-01"


def partitions_start(env=None) -> str:
    """ZOHO_PARTITIONS_START: the first month of the monthly partitions (`make demo` sets the data's first month,
    so the grid shows the months that exist). Not a date: an error naming the variable."""
    value = text("ZOHO_PARTITIONS_START", DEFAULT_START, env)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"ZOHO_PARTITIONS_START={value!r} is not a date (YYYY-MM-DD, e.g. 2025-06-01)") from None
    return value


PARTITIONS_START = partitions_start()
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# the first and last partitions are open-ended, to the ends of the calendar: a row dated 1850 or 2300 is selected
# by a run like any other (and refused by validation, naming its date), so `status` and the run agree on what is due
OPEN_START, OPEN_END = date.min, date.max

# end_offset=1: the current (still open) month exists, so today's invoices have a partition.
monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)


def partition_months(context) -> tuple[date, date] | None:
    """The run's months as (first day, first day after) for the engine, open-ended at the first and last
    partition; None for a run without partition (only an unpartitioned asset reaches that)."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    keys = monthly_partitions.get_partition_keys()
    if keys and start <= date.fromisoformat(keys[0]):
        start = OPEN_START
    if keys and end > date.fromisoformat(keys[-1]):
        end = OPEN_END
    return start, end


def partition_target(month_keys: Iterable[str]) -> tuple[str | None, dict]:
    """(partition_key, tags) of ONE run covering `month_keys`: a single partition, or a range (one run thanks to
    the single-run backfill policy). Months outside the partitions fall in the first or last one. No months: the
    current month, where an incremental run finds nothing to do for invoices and payments at no cost."""
    keys = monthly_partitions.get_partition_keys()
    clamped = sorted({min(max(k, keys[0]), keys[-1]) for k in month_keys})
    if not clamped:
        return keys[-1], {}
    if len(clamped) == 1:
        return clamped[0], {}
    return None, {RANGE_START_TAG: clamped[0], RANGE_END_TAG: clamped[-1]}


def all_months_target() -> tuple[str | None, dict]:
    keys = monthly_partitions.get_partition_keys()
    return partition_target([keys[0], keys[-1]])
