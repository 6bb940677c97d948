# Secret Manager: the secrets are declared here, their values are not.
# Add versions out of band so they never enter the Terraform state:
#   printf '%s' "$TWILIO_AUTH_TOKEN" | gcloud secrets versions add twilio-auth-token --data-file=-
#   printf '%s' "key1,key2"          | gcloud secrets versions add api-keys --data-file=-
#   printf '%s' "$SK_SID"             | gcloud secrets versions add twilio-api-key-sid --data-file=-
#   printf '%s' "$SK_SECRET"          | gcloud secrets versions add twilio-api-key-secret --data-file=-
#   openssl rand -hex 32 | tr -d '\n' | gcloud secrets versions add recipient-key --data-file=-
# See infra/README.md for rotation.

locals {
  # Terraform key (used by secret_env in functions.tf and secret_readers in
  # main.tf) -> the Secret Manager secret id.
  secrets = {
    twilio_auth_token     = "twilio-auth-token"
    api_keys              = "api-keys"
    twilio_api_key_sid    = "twilio-api-key-sid"
    twilio_api_key_secret = "twilio-api-key-secret"
    recipient_key         = "recipient-key"
  }

  secret_ids = { for key, secret in google_secret_manager_secret.secret : key => secret.secret_id }
}

resource "google_secret_manager_secret" "secret" {
  for_each = local.secrets

  secret_id = each.value

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

# The secrets were one resource each before; their state moves in place.
moved {
  from = google_secret_manager_secret.twilio_auth_token
  to   = google_secret_manager_secret.secret["twilio_auth_token"]
}

moved {
  from = google_secret_manager_secret.api_keys
  to   = google_secret_manager_secret.secret["api_keys"]
}

moved {
  from = google_secret_manager_secret.twilio_api_key_sid
  to   = google_secret_manager_secret.secret["twilio_api_key_sid"]
}

moved {
  from = google_secret_manager_secret.twilio_api_key_secret
  to   = google_secret_manager_secret.secret["twilio_api_key_secret"]
}

moved {
  from = google_secret_manager_secret.recipient_key
  to   = google_secret_manager_secret.secret["recipient_key"]
}

# secretAccessor per secret, only for the functions whose settings read it.
resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = merge([
    for secret, readers in local.secret_readers : {
      for fn in readers : "${secret}:${fn}" => { secret = secret, fn = fn }
    }
  ]...)

  secret_id = local.secret_ids[each.value.secret]
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.fn[each.value.fn].member
}
