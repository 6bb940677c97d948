"""segment_evaluator: Pub/Sub `campaign-launches`.

Streams the campaign's segment into `recipient-batches` of at most 500 phones
(FANOUT_BATCH_SIZE).
"""

import functions_framework
from cloudevents.http import CloudEvent

from shared.campaigns.evaluation import evaluate_launch
from shared.payloads import CampaignLaunch
from shared.platform.logging import get_logger, log_context
from shared.platform.pubsub import parse_pubsub_payload
from shared.wiring import (
    core_settings,
    firestore_client,
    pubsub_publisher,
    start_function,
    utcnow,
)

start_function()
log = get_logger("segment_evaluator")


@functions_framework.cloud_event
def segment_evaluator(cloud_event: CloudEvent) -> None:
    launch = parse_pubsub_payload(cloud_event.data, CampaignLaunch)
    with log_context(campaign_id=launch.campaign_id, launch_id=launch.launch_id):
        result = evaluate_launch(
            firestore_client(),
            pubsub_publisher(),
            launch,
            utcnow(),
            core_settings().fanout_batch_size,
        )
        log.info(
            "launch evaluated: %s batches, %s recipients (%s)",
            result.batches,
            result.recipients,
            result.reason or "ok",
        )
