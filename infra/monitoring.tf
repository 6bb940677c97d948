# Observability (docs/architecture.md §12): log-based metrics, the dashboard and alerts.
#
# The metric filters follow the log lines the code writes (JSON on stdout:
# jsonPayload.message, and entry labels from the structured handler's
# "logging.googleapis.com/labels"). Message filters match a prefix, label
# filters an exact value. If a log line changes in shared/ or functions/,
# change its filter; tests/unit/infra/test_terraform_consistency.py fails when
# no alternative of a metric's filter appears in the code any more.
#   message_sender    "message sent"
#                     "message skipped: <reason>"
#                     "message deferred by quiet hours until <time>"
#                     "permanent Twilio error <code>"
#                     "retriable Twilio error <code>"
#   inbound_processor "inbound classified STOP" (labels.classification=STOP)
#   receipt_updater   labels.event=opt_out (carrier opt-out, e.g. 21610)
#                     labels.event=status_callback_unmatched
#   twilio_webhooks   labels.event=signature_rejected ("webhook signature rejected ...")
#                     labels.event=webhook_publish_failed ("webhook publish failed ...")
# Dead-letter arrivals have no log line (Pub/Sub forwards them itself); they
# use Pub/Sub's own metric subscription/dead_letter_message_count.

locals {
  # Gen2 functions log as their Cloud Run service.
  service_logs = {
    for key, name in local.function_names :
    key => "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${name}\""
  }

  log_metrics = {
    ese_messages_sent = {
      description = "Messages accepted by Twilio (message_sender: \"message sent\")."
      filter      = "${local.service_logs["message_sender"]} AND jsonPayload.message=~\"^message sent\""
      label       = null
      extractor   = null
    }
    ese_message_failures = {
      description = "Permanent Twilio send errors by error code (message_sender: \"permanent Twilio error <code>\"); 21610 also moves the user to STOP."
      filter      = "${local.service_logs["message_sender"]} AND jsonPayload.message=~\"^permanent Twilio error \""
      label       = "error_code"
      extractor   = "REGEXP_EXTRACT(jsonPayload.message, \"^permanent Twilio error ([0-9A-Za-z_]+)\")"
    }
    ese_messages_skipped = {
      description = "Messages skipped at send time by reason (message_sender: \"message skipped: <reason>\")."
      filter      = "${local.service_logs["message_sender"]} AND jsonPayload.message=~\"^message skipped: \""
      label       = "reason"
      extractor   = "REGEXP_EXTRACT(jsonPayload.message, \"^message skipped: ([0-9A-Za-z_]+)\")"
    }
    ese_messages_deferred = {
      description = "Sends deferred by quiet hours (message_sender: \"message deferred by quiet hours ...\")."
      filter      = "${local.service_logs["message_sender"]} AND jsonPayload.message=~\"^message deferred by quiet hours\""
      label       = null
      extractor   = null
    }
    ese_twilio_retriable_errors = {
      description = "Retriable Twilio errors (429/20429/5xx/timeouts) by code; Cloud Tasks retries them (message_sender: \"retriable Twilio error <code>\")."
      filter      = "${local.service_logs["message_sender"]} AND jsonPayload.message=~\"^retriable Twilio error \""
      label       = "error_code"
      extractor   = "REGEXP_EXTRACT(jsonPayload.message, \"^retriable Twilio error ([0-9A-Za-z_]+)\")"
    }
    ese_opt_outs = {
      description = "Opt-outs: inbound STOP keywords (inbound_processor: \"inbound classified STOP\") and carrier opt-outs reported by status callbacks (receipt_updater: labels.event=opt_out)."
      filter      = "(${local.service_logs["inbound_processor"]} AND (labels.classification=\"STOP\" OR jsonPayload.message=~\"^inbound classified STOP\")) OR (${local.service_logs["receipt_updater"]} AND labels.event=\"opt_out\")"
      label       = null
      extractor   = null
    }
    ese_webhook_signature_rejections = {
      description = "Twilio webhooks refused with 403 for a bad X-Twilio-Signature (twilio_webhooks: labels.event=signature_rejected, \"webhook signature rejected ...\")."
      filter      = "${local.service_logs["twilio_webhooks"]} AND (labels.event=\"signature_rejected\" OR jsonPayload.message=~\"^webhook signature rejected\")"
      label       = null
      extractor   = null
    }
    ese_webhook_publish_failures = {
      description = "Webhooks answered 503 because the Pub/Sub publish failed (twilio_webhooks: labels.event=webhook_publish_failed, \"webhook publish failed ...\")."
      filter      = "${local.service_logs["twilio_webhooks"]} AND (labels.event=\"webhook_publish_failed\" OR jsonPayload.message=~\"^webhook publish failed\")"
      label       = null
      extractor   = null
    }
    ese_unmatched_status_callbacks = {
      description = "Status callbacks that matched no message, kept in receipts/ (receipt_updater: labels.event=status_callback_unmatched)."
      filter      = "${local.service_logs["receipt_updater"]} AND labels.event=\"status_callback_unmatched\""
      label       = null
      extractor   = null
    }
  }
}

resource "google_logging_metric" "engine" {
  for_each = local.log_metrics

  name        = each.key
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = each.key

    dynamic "labels" {
      for_each = each.value.label == null ? [] : [each.value.label]
      content {
        key         = labels.value
        value_type  = "STRING"
        description = "Extracted from the log line."
      }
    }
  }

  label_extractors = each.value.label == null ? {} : { (each.value.label) = each.value.extractor }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_dashboard" "engine" {
  dashboard_json = file("${path.module}/monitoring/dashboard.json")

  depends_on = [google_logging_metric.engine]
}

# ---------------------------------------------------------------------------
# Alerts
# ---------------------------------------------------------------------------

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_emails)

  display_name = "Event Stream Engine: ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }
}

locals {
  alert_channels = [for channel in google_monitoring_notification_channel.email : channel.id]
}

locals {
  # One entry per alert: a threshold over 5 minutes on one metric (optionally
  # a ratio to a second metric), with the runbook text it notifies with.
  alert_policies = {
    signature_rejections = {
      display_name       = "ESE: webhook signature rejections"
      condition          = "More than ${var.signature_rejection_alert_threshold} signature rejections in 5 min"
      filter             = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.engine["ese_webhook_signature_rejections"].name}\""
      denominator_filter = null
      threshold          = var.signature_rejection_alert_threshold
      group_by_fields    = []
      auto_close         = "1800s"
      documentation      = "Twilio webhooks are failing signature validation. Usual causes: PUBLIC_BASE_URL differs from the URL configured in Twilio, or the twilio-auth-token secret was rotated without promoting the token in Twilio (or the reverse). Also possible: someone is probing the public endpoint."
    }
    failure_rate = {
      display_name       = "ESE: send failure rate"
      condition          = "Permanent failures / sends above ${var.failure_rate_alert_threshold} over 5 min"
      filter             = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.engine["ese_message_failures"].name}\""
      denominator_filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.engine["ese_messages_sent"].name}\""
      threshold          = var.failure_rate_alert_threshold
      group_by_fields    = []
      auto_close         = "1800s"
      documentation      = "Twilio rejects a growing share of sends. Check the failures-by-error-code chart: 21610 (recipient opted out at the carrier), 21211 (invalid number), 21408/21612 (region or route not enabled), 30007 (carrier filtering). GET /v1/campaigns/{id}/summary shows errors per code per campaign."
    }
    dead_letters = {
      display_name       = "ESE: messages dead-lettered"
      condition          = "A subscription forwarded messages to its -dlq topic"
      filter             = "metric.type=\"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.type=\"pubsub_subscription\""
      denominator_filter = null
      threshold          = 0
      group_by_fields    = ["resource.label.subscription_id"]
      auto_close         = "3600s"
      documentation      = "A Pub/Sub consumer failed a message ${var.pubsub_max_delivery_attempts} times and it went to <topic>-dlq. Read it from the <topic>-dlq-sub pull subscription (`gcloud pubsub subscriptions pull <topic>-dlq-sub --limit=10`), check the consumer's error logs, fix, then republish the payloads to <topic> (handlers are idempotent). See infra/README.md."
    }
  }
}

resource "google_monitoring_alert_policy" "engine" {
  for_each = local.alert_policies

  display_name          = each.value.display_name
  combiner              = "OR"
  notification_channels = local.alert_channels

  conditions {
    display_name = each.value.condition
    condition_threshold {
      filter             = each.value.filter
      denominator_filter = each.value.denominator_filter
      comparison         = "COMPARISON_GT"
      threshold_value    = each.value.threshold
      duration           = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = each.value.group_by_fields
      }
      dynamic "denominator_aggregations" {
        for_each = each.value.denominator_filter == null ? [] : [1]
        content {
          alignment_period     = "300s"
          per_series_aligner   = "ALIGN_SUM"
          cross_series_reducer = "REDUCE_SUM"
        }
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = each.value.auto_close
  }

  documentation {
    mime_type = "text/markdown"
    content   = each.value.documentation
  }

  # Filters name log-based metrics: Monitoring refuses a policy until its
  # metric exists, and the reference inside a local does not order creation.
  depends_on = [google_logging_metric.engine]
}

moved {
  from = google_monitoring_alert_policy.signature_rejections
  to   = google_monitoring_alert_policy.engine["signature_rejections"]
}

moved {
  from = google_monitoring_alert_policy.failure_rate
  to   = google_monitoring_alert_policy.engine["failure_rate"]
}

moved {
  from = google_monitoring_alert_policy.dead_letters
  to   = google_monitoring_alert_policy.engine["dead_letters"]
}

# Cloud Run's request log records each URL as is, outside the application's
# masking. Message ids, task names and callback URLs carry no phone (they use
# recipient keys), but an API caller may name one in a path or query
# (/v1/users/{phone}, ?phone=, and the users list's page tokens, which encode a
# user's id): those entries of the api's request log are not stored.
# local/faults.py EXCLUDED_API_URLS mirrors this filter (a unit test holds them
# equal) so the local log-hygiene test sees what Cloud Logging keeps.
resource "google_logging_project_exclusion" "api_phone_urls" {
  name        = "ese-api-phone-urls"
  description = "api request-log entries whose URL may name a phone number (privacy)."
  filter      = "log_id(\"run.googleapis.com/requests\") AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.function_names["api"]}\" AND (httpRequest.requestUrl:\"/v1/users\" OR httpRequest.requestUrl:\"phone=\")"
}
