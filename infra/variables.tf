# ---------------------------------------------------------------------------
# Project
# ---------------------------------------------------------------------------

variable "project" {
  description = "GCP project id to deploy into."
  type        = string
}

variable "region" {
  description = "Region for the functions, the Cloud Tasks queue and the scheduler job."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Location of the Firestore (default) database, e.g. nam5 or us-central1. Only used when create_firestore_database is true."
  type        = string
  default     = "nam5"
}

variable "create_firestore_database" {
  description = "Create the Firestore (default) database in Native mode. Set false when the project already has one."
  type        = bool
  default     = true
}

variable "enable_apis" {
  description = "Enable the Google APIs the engine needs (google_project_service)."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# Public URLs
# ---------------------------------------------------------------------------

variable "public_base_url" {
  description = <<-EOT
    Base URL Twilio calls (PUBLIC_BASE_URL): the X-Twilio-Signature is checked
    against it. Empty = the deterministic run.app URL of the twilio-webhooks
    function (https://ese-twilio-webhooks-<project-number>.<region>.run.app),
    which is known before the function exists and so breaks the cycle
    "function env needs its own URL". Set it when Twilio calls a custom domain.
  EOT
  type        = string
  default     = ""
}

variable "message_sender_url" {
  description = "URL Cloud Tasks calls (MESSAGE_SENDER_URL, also the OIDC audience). Empty = the deterministic run.app URL of the message-sender function."
  type        = string
  default     = ""
}

# ---------------------------------------------------------------------------
# Twilio and secrets
# ---------------------------------------------------------------------------

variable "twilio_account_sid" {
  description = "Twilio Account SID (AC...). Not a secret; the auth token is in Secret Manager."
  type        = string
}

variable "twilio_messaging_service_sid" {
  description = "Twilio Messaging Service SID (MG...) used as the sender. Set this or twilio_from."
  type        = string
  default     = ""
}

variable "twilio_from" {
  description = "Sender number (E.164) or whatsapp:+... when no Messaging Service is used."
  type        = string
  default     = ""
}

variable "twilio_auth_token_version" {
  description = "Secret Manager version of twilio-auth-token the functions read. \"latest\" or a number; pin a number and bump it to force new instances after a rotation."
  type        = string
  default     = "latest"
}

variable "twilio_api_key_version" {
  description = "Secret Manager version of twilio-api-key-sid and twilio-api-key-secret that message_sender and inbound_processor read (\"latest\" or a number). Rotate both together: see infra/README.md."
  type        = string
  default     = "latest"
}

variable "recipient_key_version" {
  description = "Secret Manager version of recipient-key (the HMAC key of message ids and suppression entries). Never rotate it while messages or suppressions exist: see infra/README.md."
  type        = string
  default     = "latest"
}

variable "message_retention_days" {
  description = "Days a message document (phone, body, receipts) is kept after its final status before the TTL policy deletes it."
  type        = number
  default     = 90
}

variable "api_keys_version" {
  description = "Secret Manager version of api-keys the api function reads (\"latest\" or a number)."
  type        = string
  default     = "latest"
}

# ---------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------

variable "api_invokers" {
  description = "Principals allowed to call the private api function, e.g. [\"serviceAccount:backoffice@p.iam.gserviceaccount.com\", \"group:ops@example.com\"]."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.api_invokers : !contains(["allUsers", "allAuthenticatedUsers"], m)])
    error_message = "The api is private: name principals, never allUsers or allAuthenticatedUsers."
  }
}

variable "internal_ingress" {
  description = "Ingress of the functions only Google services call (scheduler, tasks target, Pub/Sub consumers). ALLOW_INTERNAL_ONLY admits Cloud Scheduler, Cloud Tasks and Pub/Sub push from this project; IAM (OIDC) is checked either way."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.internal_ingress)
    error_message = "internal_ingress must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

# ---------------------------------------------------------------------------
# Behaviour (CoreSettings; empty strings keep the code's defaults out of the way)
# ---------------------------------------------------------------------------

variable "default_region" {
  description = "DEFAULT_REGION: ISO region for phone numbers given in national format."
  type        = string
  default     = "US"
}

variable "log_level" {
  description = "LOG_LEVEL of every function."
  type        = string
  default     = "INFO"
}

variable "quiet_hours_default" {
  description = "QUIET_HOURS_DEFAULT: local period in which nothing is sent, HH:MM-HH:MM."
  type        = string
  default     = "21:00-08:00"
}

variable "global_frequency_cap" {
  description = "GLOBAL_FREQUENCY_CAP: N/H = at most N messages per recipient in H hours across campaigns; empty = none."
  type        = string
  default     = ""
}

variable "send_help_reply" {
  description = "SEND_HELP_REPLY: answer HELP ourselves (keep false when Twilio Advanced Opt-Out answers)."
  type        = bool
  default     = false
}

variable "send_opt_confirmations" {
  description = "SEND_OPT_CONFIRMATIONS: confirm STOP/START ourselves (keep false when Twilio Advanced Opt-Out answers)."
  type        = bool
  default     = false
}

variable "extra_env" {
  description = "Extra environment variables for every function (e.g. OPT_OUT_FOOTER, PROHIBITED_PATTERNS, HELP_REPLY, SETTLE_SECONDS)."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# Function sizing
# ---------------------------------------------------------------------------

variable "function_overrides" {
  description = "Per-function overrides of memory/cpu/timeout/instances/concurrency, keyed by function folder name (e.g. message_sender)."
  type = map(object({
    memory          = optional(string)
    cpu             = optional(string)
    timeout_seconds = optional(number)
    min_instances   = optional(number)
    max_instances   = optional(number)
    concurrency     = optional(number)
  }))
  default = {}
}

# ---------------------------------------------------------------------------
# Cloud Tasks: the send queue (the sender's throughput cap)
# ---------------------------------------------------------------------------

variable "tasks_queue_name" {
  description = "Name of the Cloud Tasks queue for sends (TASKS_QUEUE). A deleted queue name cannot be reused for about 7 days."
  type        = string
  default     = "message-sends"
}

variable "tasks_max_dispatches_per_second" {
  description = "Queue max_dispatches_per_second: total send attempts per second to Twilio. Match it to your sender(s): toll-free 3, short code 100, 10DLC per campaign tier (see infra/README.md)."
  type        = number
  default     = 10
}

variable "tasks_max_concurrent_dispatches" {
  description = "Queue max_concurrent_dispatches: sends in flight at once (keep at or below the sender's max instances x concurrency)."
  type        = number
  default     = 50
}

variable "tasks_max_attempts" {
  description = "Queue retry_config.max_attempts for a send task (-1 = unlimited)."
  type        = number
  default     = 30
}

variable "tasks_min_backoff" {
  description = "Queue retry_config.min_backoff (duration string)."
  type        = string
  default     = "2s"
}

variable "tasks_max_backoff" {
  description = "Queue retry_config.max_backoff (duration string)."
  type        = string
  default     = "300s"
}

variable "tasks_max_doublings" {
  description = "Queue retry_config.max_doublings."
  type        = number
  default     = 6
}

variable "tasks_log_sampling_ratio" {
  description = "Fraction of task operations Cloud Tasks logs (0..1)."
  type        = number
  default     = 0.1
}

variable "sender_queues" {
  description = <<-EOT
    Optional extra queues, one per sender, named <tasks_queue_name>-<key> and
    sized to that sender's MPS, e.g. { tollfree = { max_dispatches_per_second = 3 } }.
    The enqueuing functions may create tasks in them; routing a campaign's sends
    to its sender's queue is a code change (TASKS_QUEUE is one queue today).
  EOT
  type = map(object({
    max_dispatches_per_second = number
    max_concurrent_dispatches = optional(number, 50)
  }))
  default = {}
}

# ---------------------------------------------------------------------------
# Pub/Sub push subscriptions
# ---------------------------------------------------------------------------

variable "pubsub_max_delivery_attempts" {
  description = "Deliveries before a message goes to <topic>-dlq (docs/architecture.md §4: 10)."
  type        = number
  default     = 10
}

variable "pubsub_min_backoff" {
  description = "Push subscription retry_policy.minimum_backoff."
  type        = string
  default     = "10s"
}

variable "pubsub_max_backoff" {
  description = "Push subscription retry_policy.maximum_backoff."
  type        = string
  default     = "600s"
}

# ---------------------------------------------------------------------------
# Scheduler and monitoring
# ---------------------------------------------------------------------------

variable "scheduler_cron" {
  description = "Cron of the campaign_scheduler tick."
  type        = string
  default     = "* * * * *"
}

variable "alert_emails" {
  description = "E-mail addresses notified by the alert policies (empty = alerts without notification channels)."
  type        = list(string)
  default     = []
}

variable "signature_rejection_alert_threshold" {
  description = "Alert when more webhook signature rejections than this arrive in 5 minutes."
  type        = number
  default     = 10
}

variable "failure_rate_alert_threshold" {
  description = "Alert when permanent send failures / sends over 5 minutes exceed this ratio."
  type        = number
  default     = 0.05
}
