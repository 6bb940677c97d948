"""campaign_scheduler: HTTP, called by Cloud Scheduler each minute (OIDC).

Runs the tick's named sweeps (launch due campaigns, complete finished ones,
sweep stuck and stranded sends, finish cancellations, republish events). A
failed sweep does not stop the others; the tick then answers 500 so the
failure shows in Cloud Scheduler's job log, and the next tick tries again.
"""

import flask
import functions_framework

from shared.scheduler.tick import run_tick
from shared.wiring import (
    core_settings,
    firestore_client,
    pubsub_publisher,
    start_function,
    task_queue,
    utcnow,
)

start_function()


@functions_framework.http
def campaign_scheduler(request: flask.Request) -> tuple[dict[str, object], int]:
    report = run_tick(
        firestore_client(), pubsub_publisher(), task_queue(), core_settings(), utcnow()
    )
    return report.__dict__, 500 if report.failed_sweeps else 200
