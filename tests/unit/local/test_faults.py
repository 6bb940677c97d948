"""The fault plan: seeded schedules per class, per-function rates, counters,
and the reconcile rendezvous."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from local.faults import FAULT_CLASSES, FaultPlan, Rendezvous, injection_counts


def write_plan(path: Path, **plan: object) -> None:
    path.write_text(json.dumps(plan))


def decisions(plan: FaultPlan, fault: str, count: int) -> list[bool]:
    return [plan.should(fault) for _ in range(count)]


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "faults.json"
    write_plan(path)
    return path


def test_the_same_seed_and_label_give_the_same_schedule(plan_file: Path) -> None:
    write_plan(plan_file, seed=7, label="a", pubsub_redeliver=0.3)
    first = decisions(
        FaultPlan(str(plan_file), "campaign_fanout"), "pubsub_redeliver", 200
    )
    again = decisions(
        FaultPlan(str(plan_file), "campaign_fanout"), "pubsub_redeliver", 200
    )
    assert first == again
    assert 30 <= sum(first) <= 90  # about 0.3 of 200
    write_plan(plan_file, seed=8, label="a", pubsub_redeliver=0.3)
    other = decisions(
        FaultPlan(str(plan_file), "campaign_fanout"), "pubsub_redeliver", 200
    )
    assert other != first


def test_classes_and_functions_draw_from_their_own_generators(
    plan_file: Path,
) -> None:
    write_plan(
        plan_file, seed=7, label="a", pubsub_redeliver=0.5, firestore_aborted=0.5
    )
    alone = decisions(FaultPlan(str(plan_file), "f"), "pubsub_redeliver", 50)
    mixed = FaultPlan(str(plan_file), "f")
    interleaved = []
    for _ in range(50):
        interleaved.append(mixed.should("pubsub_redeliver"))
        mixed.should("firestore_aborted")
    assert interleaved == alone
    assert decisions(FaultPlan(str(plan_file), "g"), "pubsub_redeliver", 50) != alone


def test_a_rate_may_be_given_per_function(plan_file: Path) -> None:
    write_plan(
        plan_file,
        seed=1,
        label="a",
        crash_after_accept={"message_sender": 1.0, "*": 0.0},
    )
    assert all(
        decisions(FaultPlan(str(plan_file), "message_sender"), "crash_after_accept", 5)
    )
    assert not any(decisions(FaultPlan(str(plan_file), "api"), "crash_after_accept", 5))


def test_injections_are_counted_per_label_class_and_function(plan_file: Path) -> None:
    write_plan(
        plan_file, seed=3, label="first", pubsub_redeliver=1.0, firestore_aborted=0.0
    )
    fanout = FaultPlan(str(plan_file), "campaign_fanout")
    decisions(fanout, "pubsub_redeliver", 4)
    decisions(fanout, "firestore_aborted", 4)
    assert injection_counts(plan_file, "first") == {
        "pubsub_redeliver": {"campaign_fanout": 4}
    }
    # A new label: the plan is re-read at once, counts start again.
    write_plan(plan_file, seed=3, label="second", pubsub_redeliver=1.0)
    decisions(fanout, "pubsub_redeliver", 2)
    assert injection_counts(plan_file, "second") == {
        "pubsub_redeliver": {"campaign_fanout": 2}
    }
    assert injection_counts(plan_file, "third") == {}


def test_no_plan_file_means_no_faults(plan_file: Path) -> None:
    plan = FaultPlan(str(plan_file.parent / "missing.json"), "api")
    assert not any(any(decisions(plan, name, 20)) for name in FAULT_CLASSES)


def test_the_clock_runs_at_the_plans_offset(
    plan_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from local.faults import patch_clock
    from shared.platform import clock

    monkeypatch.setattr(clock, "utcnow", clock.utcnow)  # restored afterwards
    patch_clock(FaultPlan(str(plan_file), "api"))
    assert abs(clock.utcnow() - datetime.now(UTC)) < timedelta(seconds=5)
    write_plan(plan_file, seed=1, label="a", clock_offset_seconds=-3600)
    behind = datetime.now(UTC) - clock.utcnow()
    assert timedelta(minutes=59) < behind < timedelta(minutes=61)


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


def test_a_class_drawn_then_recorded_counts_only_what_was_recorded(
    plan_file: Path,
) -> None:
    """The rendezvous draws at every claim but counts only claims that met."""
    write_plan(plan_file, seed=5, label="meet", reconcile_rendezvous=1.0)
    sender = FaultPlan(str(plan_file), "message_sender")
    assert all(sender.draw("reconcile_rendezvous") for _ in range(3))
    assert injection_counts(plan_file, "meet") == {}
    sender.record("reconcile_rendezvous")
    assert injection_counts(plan_file, "meet") == {
        "reconcile_rendezvous": {"message_sender": 1}
    }


def test_counts_of_every_process_add_up_per_function(
    plan_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plan(plan_file, seed=5, label="x", send_task_exhausted=1.0)
    first = FaultPlan(str(plan_file), "message_sender")
    monkeypatch.setattr("local.faults.os.getpid", lambda: 2)  # another process
    second = FaultPlan(str(plan_file), "message_sender")
    decisions(first, "send_task_exhausted", 2)
    decisions(second, "send_task_exhausted", 3)
    assert injection_counts(plan_file, "x") == {
        "send_task_exhausted": {"message_sender": 5}
    }


def test_the_ambiguous_send_classes_are_registered() -> None:
    assert {"reconcile_rendezvous", "send_task_exhausted"} <= set(FAULT_CLASSES)
