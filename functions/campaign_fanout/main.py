"""campaign_fanout: Pub/Sub `recipient-batches`.

Renders each recipient's message, plans its send time, creates the Message
documents and enqueues one Cloud Task per message.
"""

import functions_framework
from cloudevents.http import CloudEvent

from shared.campaigns.fanout import fan_out_batch
from shared.payloads import RecipientBatch
from shared.platform.logging import get_logger, log_context
from shared.platform.pubsub import parse_pubsub_payload
from shared.wiring import (
    core_settings,
    firestore_client,
    start_function,
    task_queue,
    utcnow,
)

start_function()
log = get_logger("campaign_fanout")


@functions_framework.cloud_event
def campaign_fanout(cloud_event: CloudEvent) -> None:
    batch = parse_pubsub_payload(cloud_event.data, RecipientBatch)
    with log_context(campaign_id=batch.campaign_id, batch_no=batch.batch_no):
        result = fan_out_batch(
            firestore_client(), task_queue(), batch, core_settings(), utcnow()
        )
        log.info(
            "batch fanned out: %s created, %s existing, %s enqueued (%s)",
            result.created,
            result.existing,
            result.enqueued,
            result.reason or "ok",
        )
