# The Cloud Functions (gen2), one per folder under functions/, as one resource
# over local.function_specs: what differs between functions is data there.
#
# Every function is built from the one source archive of the repository root
# (main.tf) with GOOGLE_FUNCTION_SOURCE=functions/<name>/main.py and entry
# point <name>. The buildpack's pip installs requirements.txt, whose last line
# (`.`) installs the project, so `import shared` works under the
# `functions-framework` console script without PYTHONPATH.
# None has an event_trigger: the Pub/Sub consumers receive pushes from the
# subscriptions declared in pubsub.tf (which carry the dead-letter policies);
# functions-framework turns a raw Pub/Sub push into the CloudEvent their
# @cloud_event handlers expect.

locals {
  # Per function: its description, ingress, the env maps of the settings
  # classes FUNCTION_SETTINGS gives it (main.tf), the secret env vars it reads
  # (keys of local.secret_env) and whether it sends through Twilio (then a
  # sender must be configured). Sizing is local.sizing (main.tf).
  function_specs = {
    api = {
      description = "REST API v1 (docs/architecture.md §10). Private: named principals invoke it."
      ingress     = "ALLOW_ALL"
      env         = merge(local.core_env, local.tasks_env)
      secrets     = ["RECIPIENT_KEY", "API_KEYS"]
      sends_sms   = false
    }
    twilio_webhooks = {
      description = "Twilio webhook intake: validates X-Twilio-Signature, publishes to inbound-messages / delivery-receipts. Public (signed)."
      ingress     = "ALLOW_ALL"
      env         = merge(local.core_env, local.twilio_env)
      secrets     = ["TWILIO_AUTH_TOKEN"]
      sends_sms   = false
    }
    campaign_scheduler = {
      description = "Each-minute tick (Cloud Scheduler, OIDC): launches due campaigns, completes finished ones, sweeps stuck sends."
      ingress     = var.internal_ingress
      env         = merge(local.core_env, local.tasks_env)
      secrets     = []
      sends_sms   = false
    }
    segment_evaluator = {
      description = "Pub/Sub campaign-launches consumer: evaluates the segment into recipient-batches."
      ingress     = var.internal_ingress
      env         = local.core_env
      secrets     = []
      sends_sms   = false
    }
    campaign_fanout = {
      description = "Pub/Sub recipient-batches consumer: renders, paces, creates messages and send tasks."
      ingress     = var.internal_ingress
      env         = merge(local.core_env, local.tasks_env)
      secrets     = ["RECIPIENT_KEY"]
      sends_sms   = false
    }
    message_sender = {
      description = "Cloud Tasks target (OIDC): compliance pipeline and one Twilio send."
      ingress     = var.internal_ingress
      env         = merge(local.core_env, local.twilio_env, local.tasks_env)
      secrets     = ["TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET"]
      sends_sms   = true
    }
    receipt_updater = {
      description = "Pub/Sub delivery-receipts consumer: applies status callbacks."
      ingress     = var.internal_ingress
      env         = local.core_env
      secrets     = []
      sends_sms   = false
    }
    inbound_processor = {
      description = "Pub/Sub inbound-messages consumer: keywords, consent, replies."
      ingress     = var.internal_ingress
      env         = merge(local.core_env, local.twilio_env)
      secrets     = ["TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET"]
      sends_sms   = true
    }
    event_router = {
      description = "Pub/Sub events consumer: routes events to triggered campaigns."
      ingress     = var.internal_ingress
      env         = merge(local.core_env, local.tasks_env)
      secrets     = ["RECIPIENT_KEY"]
      sends_sms   = false
    }
    contact_importer = {
      description = "Pub/Sub import-chunks consumer: upserts one chunk of an import."
      ingress     = var.internal_ingress
      env         = local.core_env
      secrets     = ["RECIPIENT_KEY"]
      sends_sms   = false
    }
  }

  # Secret env var -> the Secret Manager secret (secrets.tf) and its version.
  secret_env = {
    TWILIO_AUTH_TOKEN     = { secret = local.secret_ids["twilio_auth_token"], version = var.twilio_auth_token_version }
    TWILIO_API_KEY_SID    = { secret = local.secret_ids["twilio_api_key_sid"], version = var.twilio_api_key_version }
    TWILIO_API_KEY_SECRET = { secret = local.secret_ids["twilio_api_key_secret"], version = var.twilio_api_key_version }
    RECIPIENT_KEY         = { secret = local.secret_ids["recipient_key"], version = var.recipient_key_version }
    API_KEYS              = { secret = local.secret_ids["api_keys"], version = var.api_keys_version }
  }
}

resource "google_cloudfunctions2_function" "fn" {
  for_each = local.function_specs

  name        = local.function_names[each.key]
  location    = var.region
  description = each.value.description

  build_config {
    runtime         = "python312"
    entry_point     = each.key
    service_account = google_service_account.identity["builder"].id
    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = "functions/${each.key}/main.py"
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn[each.key].email
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = local.sizing[each.key].memory
    available_cpu                    = local.sizing[each.key].cpu
    timeout_seconds                  = local.sizing[each.key].timeout_seconds
    min_instance_count               = local.sizing[each.key].min_instances
    max_instance_count               = local.sizing[each.key].max_instances
    max_instance_request_concurrency = local.sizing[each.key].concurrency
    environment_variables            = merge(each.value.env, { THREADS = tostring(local.sizing[each.key].concurrency) }, var.extra_env)

    dynamic "secret_environment_variables" {
      for_each = each.value.secrets
      content {
        key        = secret_environment_variables.value
        project_id = var.project
        secret     = local.secret_env[secret_environment_variables.value].secret
        version    = local.secret_env[secret_environment_variables.value].version
      }
    }
  }

  lifecycle {
    precondition {
      condition     = !each.value.sends_sms || var.twilio_messaging_service_sid != "" || var.twilio_from != ""
      error_message = "Set twilio_messaging_service_sid or twilio_from: the function sends through Twilio."
    }
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_source,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

# The functions were one resource each before; their state moves in place.
moved {
  from = google_cloudfunctions2_function.api
  to   = google_cloudfunctions2_function.fn["api"]
}

moved {
  from = google_cloudfunctions2_function.twilio_webhooks
  to   = google_cloudfunctions2_function.fn["twilio_webhooks"]
}

moved {
  from = google_cloudfunctions2_function.campaign_scheduler
  to   = google_cloudfunctions2_function.fn["campaign_scheduler"]
}

moved {
  from = google_cloudfunctions2_function.segment_evaluator
  to   = google_cloudfunctions2_function.fn["segment_evaluator"]
}

moved {
  from = google_cloudfunctions2_function.campaign_fanout
  to   = google_cloudfunctions2_function.fn["campaign_fanout"]
}

moved {
  from = google_cloudfunctions2_function.message_sender
  to   = google_cloudfunctions2_function.fn["message_sender"]
}

moved {
  from = google_cloudfunctions2_function.receipt_updater
  to   = google_cloudfunctions2_function.fn["receipt_updater"]
}

moved {
  from = google_cloudfunctions2_function.inbound_processor
  to   = google_cloudfunctions2_function.fn["inbound_processor"]
}

moved {
  from = google_cloudfunctions2_function.event_router
  to   = google_cloudfunctions2_function.fn["event_router"]
}

moved {
  from = google_cloudfunctions2_function.contact_importer
  to   = google_cloudfunctions2_function.fn["contact_importer"]
}

# ---------------------------------------------------------------------------
# Invokers (roles/run.invoker on the function's Cloud Run service)
# ---------------------------------------------------------------------------

# The only public grant: Twilio cannot authenticate, so the function checks
# X-Twilio-Signature itself and answers 403 on a bad one.
resource "google_cloud_run_service_iam_member" "twilio_webhooks_public" {
  location = google_cloudfunctions2_function.fn["twilio_webhooks"].location
  service  = google_cloudfunctions2_function.fn["twilio_webhooks"].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The api is private: only the named principals; callers send their ID token in
# X-Serverless-Authorization and the API key in Authorization.
resource "google_cloud_run_service_iam_member" "api_invoker" {
  for_each = toset(var.api_invokers)

  location = google_cloudfunctions2_function.fn["api"].location
  service  = google_cloudfunctions2_function.fn["api"].name
  role     = "roles/run.invoker"
  member   = each.value
}

resource "google_cloud_run_service_iam_member" "scheduler_invoker" {
  location = google_cloudfunctions2_function.fn["campaign_scheduler"].location
  service  = google_cloudfunctions2_function.fn["campaign_scheduler"].name
  role     = "roles/run.invoker"
  member   = google_service_account.identity["scheduler_invoker"].member
}

resource "google_cloud_run_service_iam_member" "tasks_invoker" {
  location = google_cloudfunctions2_function.fn["message_sender"].location
  service  = google_cloudfunctions2_function.fn["message_sender"].name
  role     = "roles/run.invoker"
  member   = google_service_account.identity["tasks_invoker"].member
}

resource "google_cloud_run_service_iam_member" "pubsub_push_invoker" {
  for_each = local.push_consumers

  location = google_cloudfunctions2_function.fn[each.value].location
  service  = google_cloudfunctions2_function.fn[each.value].name
  role     = "roles/run.invoker"
  member   = google_service_account.identity["pubsub_push"].member
}
