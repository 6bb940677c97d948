# Cloud Tasks: the send queue. Its target is message_sender with an OIDC token
# of the tasks invoker account (set by the code from TASKS_SERVICE_ACCOUNT).
# max_dispatches_per_second caps the sender; campaign rate_limit_mps paces each
# campaign below it (docs/architecture.md §8, "Pacing").

resource "google_cloud_tasks_queue" "message_sends" {
  name     = var.tasks_queue_name
  location = var.region

  rate_limits {
    max_dispatches_per_second = var.tasks_max_dispatches_per_second
    max_concurrent_dispatches = var.tasks_max_concurrent_dispatches
  }

  retry_config {
    max_attempts  = var.tasks_max_attempts
    min_backoff   = var.tasks_min_backoff
    max_backoff   = var.tasks_max_backoff
    max_doublings = var.tasks_max_doublings
  }

  stackdriver_logging_config {
    sampling_ratio = var.tasks_log_sampling_ratio
  }

  depends_on = [google_project_service.apis]
}

# Optional: one queue per sender, sized to its MPS (toll-free 3, short code
# 100, 10DLC per campaign tier). Same retry policy as the main queue.
resource "google_cloud_tasks_queue" "sender" {
  for_each = var.sender_queues

  name     = "${var.tasks_queue_name}-${each.key}"
  location = var.region

  rate_limits {
    max_dispatches_per_second = each.value.max_dispatches_per_second
    max_concurrent_dispatches = each.value.max_concurrent_dispatches
  }

  retry_config {
    max_attempts  = var.tasks_max_attempts
    min_backoff   = var.tasks_min_backoff
    max_backoff   = var.tasks_max_backoff
    max_doublings = var.tasks_max_doublings
  }

  stackdriver_logging_config {
    sampling_ratio = var.tasks_log_sampling_ratio
  }

  depends_on = [google_project_service.apis]
}
