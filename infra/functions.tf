# The nine Cloud Functions (gen2), one per folder under functions/.
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

resource "google_cloudfunctions2_function" "api" {
  name        = local.function_names["api"]
  location    = var.region
  description = "REST API v1 (docs/architecture.md §10). Private: named principals invoke it."

  build_config {
    runtime         = "python312"
    entry_point     = "api"
    service_account = google_service_account.builder.id
    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = "functions/api/main.py"
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn["api"].email
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    available_memory                 = local.sizing["api"].memory
    available_cpu                    = local.sizing["api"].cpu
    timeout_seconds                  = local.sizing["api"].timeout_seconds
    min_instance_count               = local.sizing["api"].min_instances
    max_instance_count               = local.sizing["api"].max_instances
    max_instance_request_concurrency = local.sizing["api"].concurrency
    environment_variables            = merge(local.core_env, local.tasks_env, { THREADS = tostring(local.sizing["api"].concurrency) }, var.extra_env)

    secret_environment_variables {
      key        = "API_KEYS"
      project_id = var.project
      secret     = google_secret_manager_secret.api_keys.secret_id
      version    = var.api_keys_version
    }
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_source,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

resource "google_cloudfunctions2_function" "twilio_webhooks" {
  name        = local.function_names["twilio_webhooks"]
  location    = var.region
  description = "Twilio webhook intake: validates X-Twilio-Signature, publishes to inbound-messages / delivery-receipts. Public (signed)."

  build_config {
    runtime         = "python312"
    entry_point     = "twilio_webhooks"
    service_account = google_service_account.builder.id
    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = "functions/twilio_webhooks/main.py"
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn["twilio_webhooks"].email
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    available_memory                 = local.sizing["twilio_webhooks"].memory
    available_cpu                    = local.sizing["twilio_webhooks"].cpu
    timeout_seconds                  = local.sizing["twilio_webhooks"].timeout_seconds
    min_instance_count               = local.sizing["twilio_webhooks"].min_instances
    max_instance_count               = local.sizing["twilio_webhooks"].max_instances
    max_instance_request_concurrency = local.sizing["twilio_webhooks"].concurrency
    environment_variables            = merge(local.core_env, local.twilio_env, { THREADS = tostring(local.sizing["twilio_webhooks"].concurrency) }, var.extra_env)

    secret_environment_variables {
      key        = "TWILIO_AUTH_TOKEN"
      project_id = var.project
      secret     = google_secret_manager_secret.twilio_auth_token.secret_id
      version    = var.twilio_auth_token_version
    }
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_source,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

resource "google_cloudfunctions2_function" "campaign_scheduler" {
  name        = local.function_names["campaign_scheduler"]
  location    = var.region
  description = "Each-minute tick (Cloud Scheduler, OIDC): launches due campaigns, completes finished ones, sweeps stuck sends."

  build_config {
    runtime         = "python312"
    entry_point     = "campaign_scheduler"
    service_account = google_service_account.builder.id
    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = "functions/campaign_scheduler/main.py"
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn["campaign_scheduler"].email
    ingress_settings                 = var.internal_ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = local.sizing["campaign_scheduler"].memory
    available_cpu                    = local.sizing["campaign_scheduler"].cpu
    timeout_seconds                  = local.sizing["campaign_scheduler"].timeout_seconds
    min_instance_count               = local.sizing["campaign_scheduler"].min_instances
    max_instance_count               = local.sizing["campaign_scheduler"].max_instances
    max_instance_request_concurrency = local.sizing["campaign_scheduler"].concurrency
    environment_variables            = merge(local.core_env, local.tasks_env, { THREADS = tostring(local.sizing["campaign_scheduler"].concurrency) }, var.extra_env)
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_source,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

resource "google_cloudfunctions2_function" "segment_evaluator" {
  name        = local.function_names["segment_evaluator"]
  location    = var.region
  description = "Pub/Sub campaign-launches consumer: evaluates the segment into recipient-batches."

  build_config {
    runtime         = "python312"
    entry_point     = "segment_evaluator"
    service_account = google_service_account.builder.id
    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = "functions/segment_evaluator/main.py"
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn["segment_evaluator"].email
    ingress_settings                 = var.internal_ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = local.sizing["segment_evaluator"].memory
    available_cpu                    = local.sizing["segment_evaluator"].cpu
    timeout_seconds                  = local.sizing["segment_evaluator"].timeout_seconds
    min_instance_count               = local.sizing["segment_evaluator"].min_instances
    max_instance_count               = local.sizing["segment_evaluator"].max_instances
    max_instance_request_concurrency = local.sizing["segment_evaluator"].concurrency
    environment_variables            = merge(local.core_env, { THREADS = tostring(local.sizing["segment_evaluator"].concurrency) }, var.extra_env)
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_source,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

resource "google_cloudfunctions2_function" "campaign_fanout" {
  name        = local.function_names["campaign_fanout"]
  location    = var.region
  description = "Pub/Sub recipient-batches consumer: renders, paces, creates messages and send tasks."

  build_config {
    runtime         = "python312"
    entry_point     = "campaign_fanout"
    service_account = google_service_account.builder.id
    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = "functions/campaign_fanout/main.py"
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn["campaign_fanout"].email
    ingress_settings                 = var.internal_ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = local.sizing["campaign_fanout"].memory
    available_cpu                    = local.sizing["campaign_fanout"].cpu
    timeout_seconds                  = local.sizing["campaign_fanout"].timeout_seconds
    min_instance_count               = local.sizing["campaign_fanout"].min_instances
    max_instance_count               = local.sizing["campaign_fanout"].max_instances
    max_instance_request_concurrency = local.sizing["campaign_fanout"].concurrency
    environment_variables            = merge(local.core_env, local.tasks_env, { THREADS = tostring(local.sizing["campaign_fanout"].concurrency) }, var.extra_env)
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_source,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

resource "google_cloudfunctions2_function" "message_sender" {
  name        = local.function_names["message_sender"]
  location    = var.region
  description = "Cloud Tasks target (OIDC): compliance pipeline and one Twilio send."

  build_config {
    runtime         = "python312"
    entry_point     = "message_sender"
    service_account = google_service_account.builder.id
    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = "functions/message_sender/main.py"
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn["message_sender"].email
    ingress_settings                 = var.internal_ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = local.sizing["message_sender"].memory
    available_cpu                    = local.sizing["message_sender"].cpu
    timeout_seconds                  = local.sizing["message_sender"].timeout_seconds
    min_instance_count               = local.sizing["message_sender"].min_instances
    max_instance_count               = local.sizing["message_sender"].max_instances
    max_instance_request_concurrency = local.sizing["message_sender"].concurrency
    environment_variables            = merge(local.core_env, local.twilio_env, local.tasks_env, { THREADS = tostring(local.sizing["message_sender"].concurrency) }, var.extra_env)

    secret_environment_variables {
      key        = "TWILIO_AUTH_TOKEN"
      project_id = var.project
      secret     = google_secret_manager_secret.twilio_auth_token.secret_id
      version    = var.twilio_auth_token_version
    }
  }

  lifecycle {
    precondition {
      condition     = var.twilio_messaging_service_sid != "" || var.twilio_from != ""
      error_message = "Set twilio_messaging_service_sid or twilio_from: the function sends through Twilio."
    }
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_source,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

resource "google_cloudfunctions2_function" "receipt_updater" {
  name        = local.function_names["receipt_updater"]
  location    = var.region
  description = "Pub/Sub delivery-receipts consumer: applies status callbacks."

  build_config {
    runtime         = "python312"
    entry_point     = "receipt_updater"
    service_account = google_service_account.builder.id
    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = "functions/receipt_updater/main.py"
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn["receipt_updater"].email
    ingress_settings                 = var.internal_ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = local.sizing["receipt_updater"].memory
    available_cpu                    = local.sizing["receipt_updater"].cpu
    timeout_seconds                  = local.sizing["receipt_updater"].timeout_seconds
    min_instance_count               = local.sizing["receipt_updater"].min_instances
    max_instance_count               = local.sizing["receipt_updater"].max_instances
    max_instance_request_concurrency = local.sizing["receipt_updater"].concurrency
    environment_variables            = merge(local.core_env, { THREADS = tostring(local.sizing["receipt_updater"].concurrency) }, var.extra_env)
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_source,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

resource "google_cloudfunctions2_function" "inbound_processor" {
  name        = local.function_names["inbound_processor"]
  location    = var.region
  description = "Pub/Sub inbound-messages consumer: keywords, consent, replies."

  build_config {
    runtime         = "python312"
    entry_point     = "inbound_processor"
    service_account = google_service_account.builder.id
    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = "functions/inbound_processor/main.py"
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn["inbound_processor"].email
    ingress_settings                 = var.internal_ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = local.sizing["inbound_processor"].memory
    available_cpu                    = local.sizing["inbound_processor"].cpu
    timeout_seconds                  = local.sizing["inbound_processor"].timeout_seconds
    min_instance_count               = local.sizing["inbound_processor"].min_instances
    max_instance_count               = local.sizing["inbound_processor"].max_instances
    max_instance_request_concurrency = local.sizing["inbound_processor"].concurrency
    environment_variables            = merge(local.core_env, local.twilio_env, { THREADS = tostring(local.sizing["inbound_processor"].concurrency) }, var.extra_env)

    secret_environment_variables {
      key        = "TWILIO_AUTH_TOKEN"
      project_id = var.project
      secret     = google_secret_manager_secret.twilio_auth_token.secret_id
      version    = var.twilio_auth_token_version
    }
  }

  lifecycle {
    precondition {
      condition     = var.twilio_messaging_service_sid != "" || var.twilio_from != ""
      error_message = "Set twilio_messaging_service_sid or twilio_from: the function sends through Twilio."
    }
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_source,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

resource "google_cloudfunctions2_function" "event_router" {
  name        = local.function_names["event_router"]
  location    = var.region
  description = "Pub/Sub events consumer: routes events to triggered campaigns."

  build_config {
    runtime         = "python312"
    entry_point     = "event_router"
    service_account = google_service_account.builder.id
    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = "functions/event_router/main.py"
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn["event_router"].email
    ingress_settings                 = var.internal_ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = local.sizing["event_router"].memory
    available_cpu                    = local.sizing["event_router"].cpu
    timeout_seconds                  = local.sizing["event_router"].timeout_seconds
    min_instance_count               = local.sizing["event_router"].min_instances
    max_instance_count               = local.sizing["event_router"].max_instances
    max_instance_request_concurrency = local.sizing["event_router"].concurrency
    environment_variables            = merge(local.core_env, local.tasks_env, { THREADS = tostring(local.sizing["event_router"].concurrency) }, var.extra_env)
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_source,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

resource "google_cloudfunctions2_function" "contact_importer" {
  name        = local.function_names["contact_importer"]
  location    = var.region
  description = "Pub/Sub import-chunks consumer: upserts one chunk of an import."

  build_config {
    runtime         = "python312"
    entry_point     = "contact_importer"
    service_account = google_service_account.builder.id
    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = "functions/contact_importer/main.py"
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn["contact_importer"].email
    ingress_settings                 = var.internal_ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = local.sizing["contact_importer"].memory
    available_cpu                    = local.sizing["contact_importer"].cpu
    timeout_seconds                  = local.sizing["contact_importer"].timeout_seconds
    min_instance_count               = local.sizing["contact_importer"].min_instances
    max_instance_count               = local.sizing["contact_importer"].max_instances
    max_instance_request_concurrency = local.sizing["contact_importer"].concurrency
    environment_variables            = merge(local.core_env, { THREADS = tostring(local.sizing["contact_importer"].concurrency) }, var.extra_env)
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_source,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

locals {
  functions = {
    api                = google_cloudfunctions2_function.api
    twilio_webhooks    = google_cloudfunctions2_function.twilio_webhooks
    campaign_scheduler = google_cloudfunctions2_function.campaign_scheduler
    segment_evaluator  = google_cloudfunctions2_function.segment_evaluator
    campaign_fanout    = google_cloudfunctions2_function.campaign_fanout
    message_sender     = google_cloudfunctions2_function.message_sender
    receipt_updater    = google_cloudfunctions2_function.receipt_updater
    inbound_processor  = google_cloudfunctions2_function.inbound_processor
    event_router       = google_cloudfunctions2_function.event_router
    contact_importer   = google_cloudfunctions2_function.contact_importer
  }
}

# ---------------------------------------------------------------------------
# Invokers (roles/run.invoker on the function's Cloud Run service)
# ---------------------------------------------------------------------------

# The only public grant: Twilio cannot authenticate, so the function checks
# X-Twilio-Signature itself and answers 403 on a bad one.
resource "google_cloud_run_service_iam_member" "twilio_webhooks_public" {
  location = google_cloudfunctions2_function.twilio_webhooks.location
  service  = google_cloudfunctions2_function.twilio_webhooks.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The api is private: only the named principals; callers send their ID token in
# X-Serverless-Authorization and the API key in Authorization.
resource "google_cloud_run_service_iam_member" "api_invoker" {
  for_each = toset(var.api_invokers)

  location = google_cloudfunctions2_function.api.location
  service  = google_cloudfunctions2_function.api.name
  role     = "roles/run.invoker"
  member   = each.value
}

resource "google_cloud_run_service_iam_member" "scheduler_invoker" {
  location = google_cloudfunctions2_function.campaign_scheduler.location
  service  = google_cloudfunctions2_function.campaign_scheduler.name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler_invoker.member
}

resource "google_cloud_run_service_iam_member" "tasks_invoker" {
  location = google_cloudfunctions2_function.message_sender.location
  service  = google_cloudfunctions2_function.message_sender.name
  role     = "roles/run.invoker"
  member   = google_service_account.tasks_invoker.member
}

resource "google_cloud_run_service_iam_member" "pubsub_push_invoker" {
  for_each = local.push_consumers

  location = local.functions[each.value].location
  service  = local.functions[each.value].name
  role     = "roles/run.invoker"
  member   = google_service_account.pubsub_push.member
}
