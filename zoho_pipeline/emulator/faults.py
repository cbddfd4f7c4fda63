"""Run-time adjustable settings (limits and fault injection) and the seeded random source behind the faults."""

from __future__ import annotations

import random
import threading
import time

# keys settable through PUT /__emulator__/faults (and reported by GET)
SETTABLE = (
    "rate_limit_per_minute",
    "daily_limit",
    "max_concurrency",
    "lockout_seconds",
    "token_lifetime",
    "latency_ms",
    "jitter_ms",
    "fail_rate",
    "drop_rate",
    "drop_mode",
    "drop_hang_s",
    "seed",
    "retry_after",
    "storm_rate_limit_per_minute",
    "storm_seconds",
    "early_token_expiry_s",
    "token_max_uses",
    "duplicate_email",
    "token_mint_limit",
    "token_mint_window_s",
)


class Faults:
    def __init__(self, config):
        self.config = config
        self.lock = threading.Lock()
        self.settings = {k: getattr(config, k) for k in SETTABLE}
        self.rng = random.Random(config.seed)
        self.storm_until = 0.0
        if self.settings["storm_rate_limit_per_minute"] is not None and self.settings["storm_seconds"]:
            self.storm_until = time.monotonic() + float(self.settings["storm_seconds"])

    def update(self, **changes) -> dict:
        unknown = set(changes) - set(SETTABLE)
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        with self.lock:
            self.settings.update(changes)
            for key, value in changes.items():  # keep the config in step: tokens and policies read it
                setattr(self.config, key, value)
            if "seed" in changes:
                self.rng = random.Random(changes["seed"])
            if "storm_rate_limit_per_minute" in changes or "storm_seconds" in changes:
                seconds = self.settings["storm_seconds"] or 0
                self.storm_until = time.monotonic() + float(seconds)
            return self.current()

    def current(self) -> dict:
        out = dict(self.settings)
        out["storm_remaining_s"] = round(max(0.0, self.storm_until - time.monotonic()), 3)
        return out

    def storm_limit(self) -> int | None:
        limit = self.settings["storm_rate_limit_per_minute"]
        if limit is None or time.monotonic() >= self.storm_until:
            return None
        return int(limit)

    # random draws (one generator, one lock: the same seed gives the same sequence) -----------------------------
    def delay_s(self) -> float:
        with self.lock:
            base, jitter = float(self.settings["latency_ms"]), float(self.settings["jitter_ms"])
            offset = self.rng.uniform(-jitter, jitter) if jitter else 0.0
        return max(0.0, base + offset) / 1000.0

    def should_fail(self) -> bool:
        with self.lock:
            return self.rng.random() < float(self.settings["fail_rate"])

    def should_drop(self) -> bool:
        with self.lock:
            return self.rng.random() < float(self.settings["drop_rate"])
