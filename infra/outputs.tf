locals {
  # Twilio's webhook connection overrides, in the URL fragment (never sent, not
  # signed): retry a 5xx or a timeout, not only a refused connection. Equal to
  # shared.delivery.gateway.CONNECTION_OVERRIDES (a unit test holds them equal).
  webhook_connection_overrides = "ct=2000&rt=5000&tt=15000&rc=3&rp=ct,rt,5xx"
}

output "twilio_inbound_webhook_url" {
  description = "Paste into the Twilio Messaging Service (Integration > Incoming Messages > Send a webhook, HTTP POST) or the number's \"A message comes in\" webhook, fragment included (connection overrides)."
  value       = "${local.public_base_url}/twilio/inbound#${local.webhook_connection_overrides}"
}

output "twilio_status_callback_url" {
  description = "Paste into the Messaging Service's Delivery Status Callback, fragment included (connection overrides). Sends set it per message too (with ?message_id=...)."
  value       = "${local.public_base_url}/twilio/status#${local.webhook_connection_overrides}"
}

output "public_base_url" {
  description = "PUBLIC_BASE_URL the webhook signatures are checked against."
  value       = local.public_base_url
}

output "api_url" {
  description = "Base URL of the REST API v1 (private: send an ID token in X-Serverless-Authorization and the API key in Authorization)."
  value       = google_cloudfunctions2_function.fn["api"].service_config[0].uri
}

output "console_url" {
  description = "The operator console (static files served by api). Private like the API: reach it through IAP or an authenticating proxy (infra/README.md, section 5); sign in with an API key."
  value       = "${google_cloudfunctions2_function.fn["api"].service_config[0].uri}/console/"
}

output "function_urls" {
  description = "Cloud Run URL of every function."
  value       = { for key, fn in google_cloudfunctions2_function.fn : key => fn.service_config[0].uri }
}

output "message_sender_url" {
  description = "MESSAGE_SENDER_URL: the Cloud Tasks target and OIDC audience."
  value       = local.message_sender_url
}

output "tasks_queue" {
  description = "The send queue (TASKS_QUEUE) and any per-sender queues."
  value       = local.task_queue_names
}

output "dead_letter_subscriptions" {
  description = "Pull subscriptions holding each topic's dead letters."
  value       = { for topic, sub in google_pubsub_subscription.dlq : topic => sub.name }
}

output "service_accounts" {
  description = "Runtime and invoker service accounts."
  value = merge(
    { for key, sa in google_service_account.fn : key => sa.email },
    {
      scheduler_invoker = google_service_account.identity["scheduler_invoker"].email
      tasks_invoker     = google_service_account.identity["tasks_invoker"].email
      pubsub_push       = google_service_account.identity["pubsub_push"].email
      builder           = google_service_account.identity["builder"].email
    },
  )
}

output "secrets" {
  description = "Secret Manager secrets to add versions to (out of band)."
  value       = local.secret_ids
}
