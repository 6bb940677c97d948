# Event Stream Engine: shared data, APIs, locals and the function source archive.

data "google_project" "this" {
  project_id = var.project
}

locals {
  project_number = data.google_project.this.number

  # Functions by folder name under functions/ (also their entry points) and
  # their deployed names. The Cloud Run service of a gen2 function has the
  # same name, which gives each one a deterministic run.app URL.
  function_names = {
    api                = "ese-api"
    twilio_webhooks    = "ese-twilio-webhooks"
    campaign_scheduler = "ese-campaign-scheduler"
    segment_evaluator  = "ese-segment-evaluator"
    campaign_fanout    = "ese-campaign-fanout"
    message_sender     = "ese-message-sender"
    receipt_updater    = "ese-receipt-updater"
    inbound_processor  = "ese-inbound-processor"
    event_router       = "ese-event-router"
    contact_importer   = "ese-contact-importer"
  }

  deterministic_urls = {
    for key, name in local.function_names :
    key => "https://${name}-${local.project_number}.${var.region}.run.app"
  }

  public_base_url    = trimsuffix(var.public_base_url != "" ? var.public_base_url : local.deterministic_urls["twilio_webhooks"], "/")
  message_sender_url = var.message_sender_url != "" ? var.message_sender_url : local.deterministic_urls["message_sender"]

  # Sizing per job. The sender scales wide and small; the evaluator and the
  # fan-out stream large segments and get more memory and time; the api is
  # medium, with room for validating a 32 MiB import (its valid rows are held
  # until published). Overridable per function with var.function_overrides.
  # Each function gets THREADS = its concurrency (functions.tf):
  # functions-framework serves that many requests at once, as many as Cloud
  # Run sends an instance.
  default_sizing = {
    api                = { memory = "1Gi", cpu = "1", timeout_seconds = 60, min_instances = 0, max_instances = 10, concurrency = 20 }
    twilio_webhooks    = { memory = "256Mi", cpu = "1", timeout_seconds = 15, min_instances = 0, max_instances = 20, concurrency = 40 }
    campaign_scheduler = { memory = "512Mi", cpu = null, timeout_seconds = 300, min_instances = 0, max_instances = 1, concurrency = 1 }
    segment_evaluator  = { memory = "1Gi", cpu = null, timeout_seconds = 540, min_instances = 0, max_instances = 10, concurrency = 1 }
    campaign_fanout    = { memory = "1Gi", cpu = null, timeout_seconds = 540, min_instances = 0, max_instances = 20, concurrency = 1 }
    message_sender     = { memory = "256Mi", cpu = null, timeout_seconds = 60, min_instances = 0, max_instances = 100, concurrency = 1 }
    receipt_updater    = { memory = "256Mi", cpu = null, timeout_seconds = 60, min_instances = 0, max_instances = 50, concurrency = 1 }
    inbound_processor  = { memory = "256Mi", cpu = null, timeout_seconds = 60, min_instances = 0, max_instances = 10, concurrency = 1 }
    event_router       = { memory = "512Mi", cpu = null, timeout_seconds = 120, min_instances = 0, max_instances = 20, concurrency = 1 }
    # Few instances: each chunk adds one write to its import report.
    contact_importer = { memory = "512Mi", cpu = null, timeout_seconds = 300, min_instances = 0, max_instances = 5, concurrency = 1 }
  }

  sizing = {
    for key, size in local.default_sizing :
    key => merge(size, { for k, v in try(var.function_overrides[key], {}) : k => v if v != null })
  }

  # Environment, one map per settings class of shared/platform/config.py.
  # Each function merges the maps of the classes FUNCTION_SETTINGS gives it;
  # tests/unit/infra/test_terraform_consistency.py checks every required
  # variable is set. Secrets (TWILIO_AUTH_TOKEN, TWILIO_API_KEY_*, RECIPIENT_KEY,
  # API_KEYS) are secret env vars.
  core_env = {
    GCP_PROJECT            = var.project
    REGION                 = var.region
    DEFAULT_REGION         = var.default_region
    LOG_LEVEL              = var.log_level
    QUIET_HOURS_DEFAULT    = var.quiet_hours_default
    GLOBAL_FREQUENCY_CAP   = var.global_frequency_cap
    SEND_HELP_REPLY        = tostring(var.send_help_reply)
    SEND_OPT_CONFIRMATIONS = tostring(var.send_opt_confirmations)
    MESSAGE_RETENTION_DAYS = tostring(var.message_retention_days)
  }

  twilio_env = {
    PUBLIC_BASE_URL              = local.public_base_url
    TWILIO_ACCOUNT_SID           = var.twilio_account_sid
    TWILIO_MESSAGING_SERVICE_SID = var.twilio_messaging_service_sid
    TWILIO_FROM                  = var.twilio_from
  }

  tasks_env = {
    TASKS_BACKEND         = "cloud"
    TASKS_QUEUE           = google_cloud_tasks_queue.message_sends.name
    TASKS_LOCATION        = var.region
    MESSAGE_SENDER_URL    = local.message_sender_url
    TASKS_SERVICE_ACCOUNT = google_service_account.identity["tasks_invoker"].email
  }

  # Least privilege, derived from what each function does (docs/architecture.md §2).
  # tests/unit/infra/test_terraform_consistency.py derives the publishers and
  # enqueuers from the code (a call graph from each main.py) and holds these
  # lists equal to it.
  firestore_users = ["api", "twilio_webhooks", "campaign_scheduler", "segment_evaluator", "campaign_fanout", "message_sender", "receipt_updater", "inbound_processor", "event_router", "contact_importer"]
  task_enqueuers  = ["api", "campaign_scheduler", "campaign_fanout", "message_sender", "event_router"]
  topic_publishers = {
    api                = ["campaign-launches", "events", "import-chunks"]
    twilio_webhooks    = ["delivery-receipts", "inbound-messages"]
    campaign_scheduler = ["campaign-launches", "events"] # events: the stranded-event sweep
    segment_evaluator  = ["recipient-batches"]
  }
  secret_readers = {
    # The auth token only checks webhook signatures; REST calls use the API key.
    twilio_auth_token     = ["twilio_webhooks"]
    twilio_api_key_sid    = ["message_sender", "inbound_processor"]
    twilio_api_key_secret = ["message_sender", "inbound_processor"]
    recipient_key         = ["api", "campaign_fanout", "event_router", "contact_importer"]
    api_keys              = ["api"]
  }

  apis = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project            = var.project
  service            = each.value
  disable_on_destroy = false
}

# ---------------------------------------------------------------------------
# Function source: the repository root (functions/, shared/, requirements.txt, pyproject.toml)
# ---------------------------------------------------------------------------

data "archive_file" "source" {
  type        = "zip"
  source_dir  = "${path.module}/.."
  output_path = "${path.module}/.terraform/ese-function-source.zip" # .terraform/ is git-ignored

  # Only functions/, shared/, requirements.txt and pyproject.toml are deployed:
  # requirements.txt installs the project itself (`.`), so the buildpack's
  # `functions-framework` finds `shared` in site-packages. Tooling, tests,
  # local-only code (local/) and caches stay out, so the archive hash changes
  # only when deployed code changes. The list lives in source_archive.json,
  # which tests/unit/infra/test_deploy_archive.py builds and boots the same way.
  excludes = jsondecode(file("${path.module}/source_archive.json")).excludes
}

resource "google_storage_bucket" "source" {
  name                        = "${var.project}-ese-function-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "source" {
  # The content hash in the name redeploys the functions when the code changes.
  name   = "function-source-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}
