# Terraform and provider versions, and where the state lives.
#
# google-beta is needed only for the Firebase resources (project, web app, Hosting
# site) and the service identities of Google's service agents; everything else uses
# the GA provider.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.20"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.20"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
  }

  # State in a GCS bucket the operator creates first (docs/terraform.md, "State"):
  #   terraform -chdir=terraform init -backend-config="bucket=<PROJECT>-tfstate"
  backend "gcs" {
    prefix = "vettra"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
  # Firebase's APIs want a quota project when called with user credentials
  user_project_override = true
  billing_project       = var.project_id
}
