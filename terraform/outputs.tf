# What an operator (and cloudbuild.yaml's Hosting step) needs after `terraform apply`.

output "hosting_site_id" {
  description = "The Firebase Hosting site: `firebase target:apply hosting dashboard <this>`."
  value       = google_firebase_hosting_site.dashboard.site_id
}

output "api_base_url" {
  description = "Where agents and the dashboard reach the API (Hosting rewrites /api/** to the functions)."
  value       = google_firebase_hosting_site.dashboard.default_url
}

output "function_urls" {
  description = "Each function's own URL, by target (expire and sequence accept only internal, authenticated callers)."
  value       = { for name, fn in google_cloudfunctions2_function.fn : name => fn.url }
}

output "function_service_accounts" {
  description = "The service account each function runs as, by target."
  value       = { for name, sa in google_service_account.fn : name => sa.email }
}

output "secrets" {
  description = "Secret Manager secret ids to fill, by the file name the key store reads (docs/terraform.md, \"Secrets\")."
  value       = { for file, secret in google_secret_manager_secret.key : file => secret.secret_id }
}

output "tasks" {
  description = "Approval timeouts on Cloud Tasks, as the functions' VETTRA_TASKS_* variables: the expiry queue, the expire endpoint its tasks are POSTed to (also their OIDC audience), and the account whose OIDC token expire accepts."
  value = {
    queue   = google_cloud_tasks_queue.expire.id
    url     = local.expire_url
    invoker = google_service_account.system["tasks-invoker"].email
  }
}

output "topics" {
  description = "Pub/Sub topics, subscriptions and their dead letters."
  value = {
    for key in keys(local.topics) : key => {
      topic                    = google_pubsub_topic.main[key].name
      subscription             = google_pubsub_subscription.main[key].name
      dead_letter_topic        = google_pubsub_topic.main["${key}-dlq"].name
      dead_letter_subscription = google_pubsub_subscription.dead_letter[key].name
    }
  }
}

output "firestore_database" {
  description = "The Firestore database and where it lives."
  value = {
    name     = google_firestore_database.main.name
    location = google_firestore_database.main.location_id
  }
}

locals {
  firebase_web_config = {
    apiKey     = data.google_firebase_web_app_config.dashboard.api_key
    authDomain = data.google_firebase_web_app_config.dashboard.auth_domain
    projectId  = var.project_id
    appId      = google_firebase_web_app.dashboard.app_id
  }
}

output "firebase_web_config" {
  description = "The dashboard's Firebase config (public by design: it identifies the project to the browser; the rules decide what it may read)."
  value       = local.firebase_web_config
}

output "dashboard_config" {
  description = "The dashboard's cloud-mode settings, all public: `terraform output -json dashboard_config` is what `node web/scripts/dist.mjs --config` renders into web/dist/app/config.js and into the Hosting CSP's connect-src (cloudbuild.yaml's hosting step)."
  value = {
    mode       = "cloud"
    orgDomains = var.org_domains
    auth0 = {
      issuer   = var.auth0_issuer
      clientId = var.auth0_client_id
      audience = var.auth0_audience
    }
    firebase = local.firebase_web_config
  }
}
