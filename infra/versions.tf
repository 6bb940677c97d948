terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "6.50.0" # exact: a provider upgrade is a reviewed change; commit .terraform.lock.hcl
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.5" # glob excludes
    }
  }

  # Partial configuration: pass the bucket at init time, e.g.
  #   terraform init -backend-config=bucket=<state-bucket> -backend-config=prefix=event-stream-engine
  backend "gcs" {}
}

provider "google" {
  project = var.project
  region  = var.region

  default_labels = {
    app = "event-stream-engine"
  }
}
