# Cloud Scheduler: the campaign_scheduler tick, each minute, with an OIDC token
# of the scheduler invoker account (the only principal that may invoke it).

resource "google_cloud_scheduler_job" "campaign_tick" {
  name        = "ese-campaign-tick"
  description = "Launch due SCHEDULED campaigns, complete finished ones, sweep stuck sends."
  region      = var.region
  schedule    = var.scheduler_cron
  time_zone   = "Etc/UTC"

  # A tick that overruns is not retried: the next minute's tick does its work.
  attempt_deadline = "${min(1800, max(15, local.sizing["campaign_scheduler"].timeout_seconds))}s"

  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.fn["campaign_scheduler"].service_config[0].uri
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.identity["scheduler_invoker"].email
      audience              = google_cloudfunctions2_function.fn["campaign_scheduler"].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_service_iam_member.scheduler_invoker]
}
