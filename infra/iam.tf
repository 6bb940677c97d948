# Service accounts and least-privilege bindings.
#
# - one runtime service account per function;
# - three invoker identities: the Cloud Scheduler job, the Cloud Tasks queue
#   (OIDC to message_sender) and the Pub/Sub push subscriptions (OIDC to the
#   five Pub/Sub consumers);
# - one build service account for the function builds.
# Nothing is granted to allUsers except the twilio_webhooks invoker (functions.tf).

resource "google_service_account" "fn" {
  for_each = local.function_names

  account_id   = "ese-${replace(each.key, "_", "-")}"
  display_name = "Event Stream Engine ${each.key} runtime"

  depends_on = [google_project_service.apis]
}

# The identities that call functions, and the one that builds them.
locals {
  service_identities = {
    scheduler_invoker = {
      account_id   = "ese-scheduler-invoker"
      display_name = "Event Stream Engine: Cloud Scheduler -> campaign_scheduler (OIDC)"
    }
    tasks_invoker = {
      account_id   = "ese-tasks-invoker"
      display_name = "Event Stream Engine: Cloud Tasks -> message_sender (OIDC)"
    }
    pubsub_push = {
      account_id   = "ese-pubsub-push"
      display_name = "Event Stream Engine: Pub/Sub push -> consumers (OIDC)"
    }
    builder = {
      account_id   = "ese-function-builder"
      display_name = "Event Stream Engine: Cloud Functions builds"
    }
  }
}

resource "google_service_account" "identity" {
  for_each = local.service_identities

  account_id   = each.value.account_id
  display_name = each.value.display_name

  depends_on = [google_project_service.apis]
}

moved {
  from = google_service_account.scheduler_invoker
  to   = google_service_account.identity["scheduler_invoker"]
}

moved {
  from = google_service_account.tasks_invoker
  to   = google_service_account.identity["tasks_invoker"]
}

moved {
  from = google_service_account.pubsub_push
  to   = google_service_account.identity["pubsub_push"]
}

moved {
  from = google_service_account.builder
  to   = google_service_account.identity["builder"]
}

locals {
  pubsub_service_agent = "serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# ---------------------------------------------------------------------------
# Runtime roles
# ---------------------------------------------------------------------------

# Firestore has no per-collection IAM: datastore.user on the project, only for
# the functions that read or write documents. twilio_webhooks is one of them:
# it applies a status callback to its message itself (docs/architecture.md §9).
resource "google_project_iam_member" "firestore_user" {
  for_each = toset(local.firestore_users)

  project = var.project
  role    = "roles/datastore.user"
  member  = google_service_account.fn[each.value].member
}

# Publisher on exactly the topics each function publishes to.
resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = merge([
    for fn, topics in local.topic_publishers : {
      for topic in topics : "${fn}:${topic}" => { fn = fn, topic = topic }
    }
  ]...)

  topic  = google_pubsub_topic.topic[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = google_service_account.fn[each.value.fn].member
}

# Enqueuers: cloudtasks.enqueuer on the send queue(s) and actAs on the tasks
# invoker account, whose identity the OIDC token of each task carries.
locals {
  task_queue_names = merge(
    { main = google_cloud_tasks_queue.message_sends.name },
    { for key, queue in google_cloud_tasks_queue.sender : key => queue.name },
  )
  task_enqueuer_grants = {
    for pair in setproduct(local.task_enqueuers, keys(merge({ main = true }, var.sender_queues))) :
    "${pair[0]}:${pair[1]}" => { fn = pair[0], queue = pair[1] }
  }
}

resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = local.task_enqueuer_grants

  name     = local.task_queue_names[each.value.queue]
  location = var.region
  role     = "roles/cloudtasks.enqueuer"
  member   = google_service_account.fn[each.value.fn].member
}

resource "google_service_account_iam_member" "enqueuer_acts_as_tasks_invoker" {
  for_each = toset(local.task_enqueuers)

  service_account_id = google_service_account.identity["tasks_invoker"].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.fn[each.value].member
}

# ---------------------------------------------------------------------------
# Pub/Sub service agent: mint OIDC push tokens, dead-letter forwarding
# ---------------------------------------------------------------------------

# Needed by projects created before April 2021 to sign push tokens; scoped to
# the push identity only.
resource "google_service_account_iam_member" "pubsub_agent_push_token" {
  service_account_id = google_service_account.identity["pubsub_push"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# ---------------------------------------------------------------------------
# Build service account (used by Cloud Build for each function build)
# ---------------------------------------------------------------------------

# The role Google documents for a custom function build account: write build
# logs, push the image to Artifact Registry, read the source.
resource "google_project_iam_member" "builder" {
  project = var.project
  role    = "roles/cloudbuild.builds.builder"
  member  = google_service_account.identity["builder"].member
}

resource "google_storage_bucket_iam_member" "builder_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.identity["builder"].member
}
