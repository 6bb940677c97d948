"""Fault-injection helpers: the reconcile rendezvous and the fault counters."""

from __future__ import annotations

import threading
from pathlib import Path

from local.faults import FaultCounters, Rendezvous, read_fault_counts


def test_two_claims_of_one_sid_meet_and_the_second_reports_it() -> None:
    rendezvous = Rendezvous(wait_s=10.0)
    results: dict[str, bool] = {}
    first = threading.Thread(
        target=lambda: results.__setitem__("a", rendezvous.meet("SM1", "a"))
    )
    first.start()
    # The second claim releases the first, which would otherwise wait 10 s.
    while not rendezvous._waiting:  # until the first waits
        threading.Event().wait(0.01)
    results["b"] = rendezvous.meet("SM1", "b")
    first.join(timeout=5)

    assert not first.is_alive()
    assert results == {"a": False, "b": True}


def test_a_lone_claim_goes_on_alone_and_a_message_waits_only_once() -> None:
    rendezvous = Rendezvous(wait_s=0.05)

    assert rendezvous.meet("SM1", "a") is False
    assert rendezvous._waiting == {}
    assert rendezvous.meet("SM2", "a") is False  # no second wait for "a"
    assert rendezvous._waiting == {}


def test_counters_of_every_process_add_up(tmp_path: Path) -> None:
    plan = str(tmp_path / "faults.json")
    sender, other = FaultCounters(plan, "message_sender"), FaultCounters(plan, "api")
    sender.add("send_task_exhausted")
    sender.add("send_task_exhausted")
    other.add("reconcile_rendezvous")

    assert read_fault_counts(tmp_path) == {
        "send_task_exhausted": 2,
        "reconcile_rendezvous": 1,
    }
