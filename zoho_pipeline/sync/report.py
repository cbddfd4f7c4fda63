"""What a sync run did, per entity: the figures the CLI prints and Dagster turns into metadata and plots."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# Why a run ended before all due rows were done. None: it finished.
STOP_RATE_LIMITED = "rate_limited"  # ZOHO kept answering 429 past the longest wait we accept
STOP_BUDGET = "budget_exhausted"  # the organization's daily API budget is spent
STOP_KILL_SWITCH = "kill_switch"  # ENABLE_ZOHO_SYNC=false
STOP_AUTH = "auth"  # credentials or organization rejected: every call would fail
STOP_UNREACHABLE = "unreachable"  # no connection to ZOHO could be made: every call would fail
STOP_REQUESTED = "stop_requested"  # the caller asked the run to stop (Dagster run termination)


@dataclass
class Failure:
    entity: str
    entity_id: str
    label: str  # the row as a person knows it: "Thandi Nkosi <thandi@example.co.za>", "INV-2025-000123"
    error_code: str | None
    error: str
    dead_lettered: bool = False
    call_id: int | None = None  # the attempt's last API call in the inspector (`zoho-pipeline calls --id`)


@dataclass
class EntityReport:
    entity: str
    due: int = 0  # rows found due when the entity's pass started (incl. prerequisites pulled in)
    created: int = 0
    updated: int = 0
    adopted: int = 0  # found in ZOHO by reference after an ambiguous attempt, linked instead of created again
    unchanged: int = 0  # payload hash equal to the last sync: zero API calls
    failed: int = 0  # permanent failures and dead letters in this run
    retried: int = 0  # retryable failures left for a later attempt
    waiting: int = 0  # of `retried`: rows that wait, nothing sent (a future-dated change, a recurring invoice's link)
    dead_lettered: int = 0
    skipped: int = 0  # claimed by another live run, or released when the run stopped
    prerequisites: int = 0  # rows of this entity synced because a child needed them (dry run: would be)
    would_create: int = 0  # dry run
    would_update: int = 0  # dry run
    invalid: int = 0  # dry run: rows our validation rejects
    estimated_calls: int = 0  # dry run: API calls the real run would make (creates, updates, look-ups)
    api_calls: int = 0
    rate_limited: int = 0
    duration_s: float = 0.0
    backlog: int = 0  # rows still due after the run, incl. those in doubt under a run that stopped beating
    in_doubt: int = 0  # of the backlog: rows `syncing` under another run that stopped beating
    still_retrying: int = 0  # rows in scope whose next attempt is later (this run's and earlier runs')
    next_attempt_at: str | None = None  # the earliest of those
    before_sync: dict | None = None  # the entity's own work first (invoices: the recurring-invoice links)
    failures: list[Failure] = field(default_factory=list)

    @property
    def synced(self) -> int:
        return self.created + self.updated + self.adopted + self.unchanged

    @property
    def rows_per_minute(self) -> float:
        done = self.synced + self.failed + self.retried
        return round(done / self.duration_s * 60, 1) if self.duration_s > 0 else 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["synced"] = self.synced
        d["rows_per_minute"] = self.rows_per_minute
        return d


@dataclass
class RunReport:
    run_id: str
    dry_run: bool = False
    entities: dict[str, EntityReport] = field(default_factory=dict)
    stopped_reason: str | None = None
    stopped_detail: str | None = None
    api_calls: int = 0
    duration_s: float = 0.0
    setup_calls: int = 0  # dry run: one-off calls for the VAT tax and products not yet known
    diffs: list = field(default_factory=list)  # dry run with diff: sync.diff.RowDiff per row that would change
    diffs_omitted: int = 0  # rows that would change beyond the MAX_DIFF_ROWS kept (counted, not kept)

    def entity(self, name: str) -> EntityReport:
        return self.entities.setdefault(name, EntityReport(entity=name))

    @property
    def failures(self) -> list[Failure]:
        return [f for rep in self.entities.values() for f in rep.failures]

    @property
    def estimated_calls(self) -> int:
        return self.setup_calls + sum(rep.estimated_calls for rep in self.entities.values())

    @property
    def exit_code(self) -> int:
        """0: every row in scope is synced or unchanged; 1: rows failed in this run, or rows are still retrying,
        due or in doubt after it; 2: the run itself could not work."""
        if self.stopped_reason in (STOP_AUTH, STOP_UNREACHABLE):
            return 2
        if self.stopped_reason or any(r.failed or r.retried or r.dead_lettered for r in self.entities.values()):
            return 1
        if not self.dry_run and any(r.backlog or r.still_retrying for r in self.entities.values()):
            return 1
        return 0

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "stopped_reason": self.stopped_reason,
            "stopped_detail": self.stopped_detail,
            "api_calls": self.api_calls,
            "duration_s": self.duration_s,
            "exit_code": self.exit_code,
            "estimated_calls": self.estimated_calls,
            "setup_calls": self.setup_calls,
            "entities": {name: rep.as_dict() for name, rep in self.entities.items()},
        }
