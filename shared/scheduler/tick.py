"""The minute tick: an ordered list of named sweeps (launch due campaigns,
complete finished ones, sweep stuck sends and stranded queued messages, finish
cancellations, republish events never routed), each reported by name.

Each sweep's logic lives in its domain package; this module only lists the
sweeps, runs them and reports them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.campaigns import scheduler as campaign_sweeps
from shared.events.republish import republish_stranded_events
from shared.platform.config import CoreSettings
from shared.platform.firestore import Database
from shared.platform.logging import get_logger
from shared.platform.pubsub import Publisher
from shared.platform.tasks import TaskQueue

log = get_logger(__name__)


@dataclass
class TickReport:
    launched: list[str] = field(default_factory=list)
    relaunched: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    swept: int = 0
    stranded_requeued: int = 0
    stranded_failed: int = 0
    republished_events: int = 0
    # Sweep name -> "ok" or "failed", in the order the sweeps ran.
    sweeps: dict[str, str] = field(default_factory=dict)

    @property
    def failed_sweeps(self) -> list[str]:
        return [name for name, outcome in self.sweeps.items() if outcome != "ok"]


@dataclass(frozen=True)
class TickContext:
    db: Database
    publisher: Publisher
    tasks: TaskQueue
    core: CoreSettings
    now: datetime
    report: TickReport


@dataclass(frozen=True)
class Sweep:
    name: str
    run: Callable[[TickContext], None]


def run_sweeps(ctx: TickContext, sweeps: Sequence[Sweep]) -> TickReport:
    """Run every sweep in order; one that raises is logged and reported as
    failed, and the next still runs: the sweeps are independent, and one
    broken query must not stall launches or the stranded-message rescue.
    """
    for sweep in sweeps:
        try:
            sweep.run(ctx)
        except Exception:
            log.exception(
                "sweep %s failed",
                sweep.name,
                extra={"labels": {"event": "sweep_failed", "sweep": sweep.name}},
            )
            ctx.report.sweeps[sweep.name] = "failed"
        else:
            ctx.report.sweeps[sweep.name] = "ok"
    return ctx.report


def _launch_due(ctx: TickContext) -> None:
    campaign_sweeps.launch_due(ctx.db, ctx.publisher, ctx.now, ctx.report.launched)


def _check_running_campaigns(ctx: TickContext) -> None:
    campaign_sweeps.check_running_campaigns(
        campaign_sweeps.SweepDeps(ctx.db, ctx.publisher, ctx.tasks, ctx.core, ctx.now),
        relaunched=ctx.report.relaunched,
        completed=ctx.report.completed,
    )


def _resume_held_of_active(ctx: TickContext) -> None:
    campaign_sweeps.resume_held_of_active(ctx.db, ctx.tasks, ctx.now)


def _sweep_stuck_sends(ctx: TickContext) -> None:
    ctx.report.swept = campaign_sweeps.sweep_stuck_sends(ctx.db, ctx.tasks, ctx.now)


def _sweep_stranded_queued(ctx: TickContext) -> None:
    requeued, failed = campaign_sweeps.sweep_stranded_queued(
        ctx.db, ctx.tasks, ctx.core, ctx.now
    )
    ctx.report.stranded_requeued += requeued
    ctx.report.stranded_failed += failed


def _finish_cancellations(ctx: TickContext) -> None:
    campaign_sweeps.finish_cancellations(ctx.db, ctx.now)


def _republish_stranded_events(ctx: TickContext) -> None:
    ctx.report.republished_events = republish_stranded_events(
        ctx.db, ctx.publisher, ctx.now
    )


TICK_SWEEPS: tuple[Sweep, ...] = (
    Sweep("launch_due", _launch_due),
    Sweep("check_running", _check_running_campaigns),
    Sweep("resume_held_active", _resume_held_of_active),
    Sweep("stuck_sends", _sweep_stuck_sends),
    Sweep("stranded_queued", _sweep_stranded_queued),
    Sweep("finish_cancellations", _finish_cancellations),
    Sweep("republish_events", _republish_stranded_events),
)


def run_tick(
    db: Database,
    publisher: Publisher,
    tasks: TaskQueue,
    core: CoreSettings,
    now: datetime,
    sweeps: Sequence[Sweep] = TICK_SWEEPS,
) -> TickReport:
    ctx = TickContext(db, publisher, tasks, core, now, TickReport())
    return run_sweeps(ctx, sweeps)
