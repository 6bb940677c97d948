"""contact_importer: Pub/Sub `import-chunks`.

Upserts one chunk of validated contact rows and adds its counts to the import
report, once: a redelivered chunk resumes or is acknowledged.
"""

import functions_framework
from cloudevents.http import CloudEvent

from shared.audience.import_chunks import import_chunk
from shared.payloads import ImportChunk
from shared.platform.logging import get_logger, log_context
from shared.platform.pubsub import parse_pubsub_payload
from shared.wiring import firestore_client, start_function, utcnow

start_function()
log = get_logger("contact_importer")


@functions_framework.cloud_event
def contact_importer(cloud_event: CloudEvent) -> None:
    chunk = parse_pubsub_payload(cloud_event.data, ImportChunk)
    with log_context(import_id=chunk.import_id):
        result = import_chunk(firestore_client(), chunk, utcnow())
        log.info(
            "import chunk %s (%s rows): %s", chunk.chunk_no, len(chunk.rows), result
        )
