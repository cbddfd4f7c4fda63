"""ZOHO's clock over real HTTP: GET/PUT /__emulator__/clock, forward only, --start-time, and a restart from the
state file that continues the same schedule (no renewal twice, none lost, an end-of-term change kept)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import requests

from zoho_pipeline_tests.emulator.accounts import Api, catalog, customer, emu


def clock(handle):
    return requests.get(f"{handle.url}/__emulator__/clock", timeout=5).json()


def move(handle, **body):
    return requests.put(f"{handle.url}/__emulator__/clock", json=body, timeout=10)


def renewal_dates(api, sid):
    return [i["invoice_date"] for i in api.ok("GET", "/invoices", subscription_id=sid)["invoices"]]


def test_clock_reads_moves_forward_and_refuses_to_move_back():
    with emu(start_time="2025-03-31T22:15:00+02:00") as h:
        assert clock(h) == {"now": "2025-03-31T20:15:00Z"}
        r = move(h, advance_days=2)
        assert r.status_code == 200 and r.json() == {"now": "2025-04-02T20:15:00Z", "done": {}}
        assert move(h, now="2025-04-02T20:15:00Z").status_code == 200  # standing still is allowed
        back = move(h, now="2025-04-01")
        assert back.status_code == 400 and "only moves forward" in back.json()["message"]
        for body in (
            {"advance_days": -1},
            {"advance_days": 1.5},
            {"now": "tomorrow"},
            {},
            {"now": "2025-05-01", "advance_days": 1},
            {"later": 1},
        ):
            assert move(h, **body).status_code == 400, body
        assert clock(h) == {"now": "2025-04-02T20:15:00Z"}  # nothing moved
        assert h.clock() == "2025-04-02T20:15:00Z"


def test_the_clock_stands_still_and_dates_writes():
    with emu(start_time="2024-02-28T10:00:00Z") as h:
        api = Api(h)
        catalog(api)
        cid = customer(api)
        assert api.ok("GET", f"/customers/{cid}")["customer"]["created_time"] == "2024-02-28T10:00:00+0000"
        h.move_clock(advance_days=1)
        pay = api.ok("POST", "/payments", {"customer_id": cid, "payment_mode": "cash", "amount": 10})["payment"]
        assert pay["date"] == "2024-02-29" and clock(h)["now"] == "2024-02-29T10:00:00Z"


def test_reset_keeps_the_clock():
    with emu(start_time="2025-01-01") as h:
        h.move_clock(advance_days=10)
        h.reset()
        assert h.clock() == "2025-01-11T00:00:00Z"


def test_a_restart_from_the_state_file_continues_the_schedule(tmp_path):
    state = str(tmp_path / "zoho.json")
    with emu(start_time="2025-01-01T08:00:00Z", state_file=state) as first:
        api = Api(first)
        catalog(api)
        cid = customer(api)
        sid = api.ok(
            "POST", "/subscriptions", {"customer_id": cid, "plan": {"plan_code": "fibre-50"}, "starts_at": "2025-01-01"}
        )["subscription"]["subscription_id"]
        first.move_clock(now="2025-02-15T08:00:00Z")
        api.ok("PUT", f"/subscriptions/{sid}", {"plan": {"plan_code": "fibre-100"}, "end_of_term": True})
        assert renewal_dates(api, sid) == ["2025-01-01", "2025-02-01"]
    # the same command line again: the saved clock wins over the (earlier) --start-time
    with emu(start_time="2025-01-01T08:00:00Z", state_file=state) as second:
        api = Api(second)
        assert clock(second) == {"now": "2025-02-15T08:00:00Z"}
        plan = api.ok("GET", f"/subscriptions/{sid}/scheduledchanges")["subscription"]["plan"]["plan_code"]
        assert plan == "fibre-100"
        assert second.move_clock(now="2025-03-15T08:00:00Z")["done"]["renewed"] == 1
        assert renewal_dates(api, sid) == ["2025-01-01", "2025-02-01", "2025-03-01"]
        march = api.ok("GET", "/invoices", subscription_id=sid)["invoices"][-1]
        assert march["total"] == 920.0  # the change saved before the restart applied at the renewal
    # a later --start-time moves the saved clock on, running what fell due on the way
    with emu(start_time="2025-05-02T08:00:00Z", state_file=state) as third:
        api = Api(third)
        assert clock(third)["now"] == "2025-05-02T08:00:00Z"
        assert renewal_dates(api, sid)[-2:] == ["2025-04-01", "2025-05-01"]


def test_cli_takes_start_time_and_prorate(tmp_path):
    from zoho_pipeline.emulator.__main__ import _parser

    args = _parser().parse_args(["--start-time", "2025-01-01", "--prorate"])
    assert (args.start_time, args.prorate) == ("2025-01-01", True)
    assert _parser().parse_args([]).prorate is False
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoho_pipeline.emulator", "--port", "0", "--start-time", "2025-06-30T23:00:00Z"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[1]
        assert requests.get(f"{url}/__emulator__/clock", timeout=5).json() == {"now": "2025-06-30T23:00:00Z"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_bad_start_time_is_an_error_naming_it(capsys):
    from zoho_pipeline.emulator.__main__ import _parser

    with pytest.raises(ValueError, match="ISO-8601"):
        emu(start_time="31/01/2025")
    with pytest.raises(SystemExit):
        _parser().parse_args(["--start-time", "31/01/2025"])
    assert "--start-time" in capsys.readouterr().err
