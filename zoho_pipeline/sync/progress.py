"""Progress lines for long passes: rows done of due, rate, ETA. One line every few seconds, never per row."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("zoho_pipeline.sync")


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    def __init__(self, entity: str, due: int, interval_s: float):
        self.entity, self.due, self.interval_s = entity, due, interval_s
        self.started = self._last = time.monotonic()
        self._lock = threading.Lock()
        if due:
            log.info("sync start entity=%s due=%d", entity, due)

    @staticmethod
    def _done(rep) -> int:
        return rep.synced + rep.failed + rep.retried + rep.skipped

    def tick(self, rep) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.interval_s:
                return
            self._last = now
        done, elapsed = self._done(rep), now - self.started
        rate = done / elapsed * 60 if elapsed > 0 else 0.0
        remaining = max(0, self.due - done)
        eta = _eta(remaining / rate * 60) if rate > 0 else "?"
        log.info(
            "sync progress entity=%s done=%d due=%d rate=%.1f/min eta=%s failed=%d api_calls=%d",
            self.entity,
            done,
            self.due,
            rate,
            eta,
            rep.failed,
            rep.api_calls,
        )

    def done(self, rep) -> None:
        if rep.due or self._done(rep):
            log.info(
                "sync done entity=%s created=%d updated=%d adopted=%d unchanged=%d failed=%d retried=%d "
                "api_calls=%d duration_s=%.1f backlog=%d",
                self.entity,
                rep.created,
                rep.updated,
                rep.adopted,
                rep.unchanged,
                rep.failed,
                rep.retried,
                rep.api_calls,
                rep.duration_s,
                rep.backlog,
            )
