# Secret Manager: the secrets are declared here, their values are not.
# Add versions out of band so they never enter the Terraform state:
#   printf '%s' "$TWILIO_AUTH_TOKEN" | gcloud secrets versions add twilio-auth-token --data-file=-
#   printf '%s' "key1,key2"          | gcloud secrets versions add api-keys --data-file=-
#   printf '%s' "$SK_SID"             | gcloud secrets versions add twilio-api-key-sid --data-file=-
#   printf '%s' "$SK_SECRET"          | gcloud secrets versions add twilio-api-key-secret --data-file=-
#   openssl rand -hex 32 | tr -d '\n' | gcloud secrets versions add recipient-key --data-file=-
# See infra/README.md for rotation.

resource "google_secret_manager_secret" "twilio_auth_token" {
  secret_id = "twilio-auth-token"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "api_keys" {
  secret_id = "api-keys"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "twilio_api_key_sid" {
  secret_id = "twilio-api-key-sid"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "twilio_api_key_secret" {
  secret_id = "twilio-api-key-secret"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "recipient_key" {
  secret_id = "recipient-key"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

locals {
  secret_ids = {
    twilio_auth_token     = google_secret_manager_secret.twilio_auth_token.secret_id
    api_keys              = google_secret_manager_secret.api_keys.secret_id
    twilio_api_key_sid    = google_secret_manager_secret.twilio_api_key_sid.secret_id
    twilio_api_key_secret = google_secret_manager_secret.twilio_api_key_secret.secret_id
    recipient_key         = google_secret_manager_secret.recipient_key.secret_id
  }
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
