"""The one monthly partitions definition: invoices by invoice_date, payments by completed_at."""

from __future__ import annotations

import os
from datetime import date, datetime

import dagster as dg

PARTITIONS_START = os.environ.get("ZOHO_PARTITIONS_START") or "2024-01-01"

# end_offset=1: the current (still open) month exists, so today's invoices have a partition.
monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)


def month_key(value: date | datetime) -> str:
    """The partition key of the month holding `value` (a date or a datetime)."""
    return f"{value.year:04d}-{value.month:02d}-01"


def partition_months(context) -> tuple[date, date] | None:
    """The run's months as (first day, first day after) for the engine; None when the run has no partition
    (an incremental run of every due row, whatever its month)."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    window = context.partition_time_window
    return window.start.date(), window.end.date()
