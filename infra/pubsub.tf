# Pub/Sub: one topic per shared.platform.pubsub.Topic, each with a dead-letter
# topic <topic>-dlq (docs/architecture.md §4).
#
# Dead letters: an Eventarc trigger (event_trigger on the function) creates and
# owns its push subscription, and the function resource cannot give that
# subscription a dead_letter_policy. So the consumers are deployed without
# event_trigger, and this file declares their push subscriptions itself:
#   <topic>  --push (OIDC, ese-pubsub-push)-->  consumer function URL
#            --after max_delivery_attempts (10)-->  <topic>-dlq  -->  <topic>-dlq-sub (pull, 7 days)
# A non-2xx answer (an exception in the handler) is a nack: Pub/Sub redelivers
# with exponential backoff, then dead-letters. The -dlq-sub pull subscription
# keeps the dead letters for inspection and replay (a topic without a
# subscription would drop them).

locals {
  topics = ["campaign-launches", "recipient-batches", "delivery-receipts", "inbound-messages", "events", "import-chunks"]

  # Topic -> the function (folder name) that consumes it.
  push_consumers = {
    "campaign-launches" = "segment_evaluator"
    "recipient-batches" = "campaign_fanout"
    "delivery-receipts" = "receipt_updater"
    "inbound-messages"  = "inbound_processor"
    "events"            = "event_router"
    "import-chunks"     = "contact_importer"
  }
}

resource "google_pubsub_topic" "topic" {
  for_each = toset(local.topics)

  name = each.key

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "dlq" {
  for_each = toset(local.topics)

  name = "${each.key}-dlq"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "push" {
  for_each = local.push_consumers

  name  = "${each.key}-${replace(each.value, "_", "-")}"
  topic = google_pubsub_topic.topic[each.key].id

  # Pub/Sub waits this long for the function's answer before redelivering:
  # the function's own timeout (at most 600 s).
  ack_deadline_seconds       = min(600, max(10, local.sizing[each.value].timeout_seconds))
  message_retention_duration = "604800s"

  push_config {
    # The topic path lets functions-framework set the CloudEvent source.
    push_endpoint = "${google_cloudfunctions2_function.fn[each.value].service_config[0].uri}/projects/${var.project}/topics/${each.key}"

    oidc_token {
      service_account_email = google_service_account.identity["pubsub_push"].email
      audience              = google_cloudfunctions2_function.fn[each.value].service_config[0].uri
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dlq[each.key].id
    max_delivery_attempts = var.pubsub_max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = var.pubsub_min_backoff
    maximum_backoff = var.pubsub_max_backoff
  }

  expiration_policy {
    ttl = "" # never expires
  }

  depends_on = [
    google_cloud_run_service_iam_member.pubsub_push_invoker,
    google_pubsub_topic_iam_member.dlq_publisher,
  ]
}

# Holds dead letters for inspection and replay (pull; no push, no further DLQ).
resource "google_pubsub_subscription" "dlq" {
  for_each = toset(local.topics)

  name                       = "${each.key}-dlq-sub"
  topic                      = google_pubsub_topic.dlq[each.key].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}

# The Pub/Sub service agent forwards undeliverable messages: publisher on each
# dead-letter topic, subscriber on each source subscription (to ack them there).
resource "google_pubsub_topic_iam_member" "dlq_publisher" {
  for_each = toset(local.topics)

  topic  = google_pubsub_topic.dlq[each.key].name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dlq_forwarder" {
  for_each = local.push_consumers

  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
