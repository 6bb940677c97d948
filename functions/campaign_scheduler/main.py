"""campaign_scheduler: HTTP, called by Cloud Scheduler each minute (OIDC).

Runs the tick's named sweeps (launch due campaigns, complete finished ones,
sweep stuck and stranded sends, finish cancellations, republish events). A
failed sweep does not stop the others; the tick then answers 500 so the
failure shows in Cloud Scheduler's job log, and the next tick tries again.
"""

import flask
import functions_framework

from shared.platform.clock import utcnow
from shared.platform.config import core_settings
from shared.platform.firestore import firestore_client
from shared.platform.pubsub import pubsub_publisher
from shared.platform.runtime import start_function, task_queue
from shared.scheduler.tick import run_tick

start_function()


@functions_framework.http
def campaign_scheduler(request: flask.Request) -> tuple[dict[str, object], int]:
    report = run_tick(
        firestore_client(), pubsub_publisher(), task_queue(), core_settings(), utcnow()
    )
    return report.__dict__, 500 if report.failed_sweeps else 200
