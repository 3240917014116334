# Vettra on Google Cloud: one 2nd-gen Cloud Function per target of functions/main.py,
# each with a service account of its own holding only what its routes use; Firestore
# (database, indexes from firestore.indexes.json, rules from firestore.rules); the
# Cloud Tasks queue of expiry timers; the Pub/Sub topics of decision events and of
# the audit sequencer, with dead letters; Secret Manager secrets mounted as files;
# Firebase Hosting in front. docs/terraform.md explains every choice.
#
# Sections: project and APIs · configuration (locals) · Firestore · secrets ·
# messaging (Pub/Sub, Cloud Tasks, Cloud Scheduler) · functions (source, service
# accounts, IAM, the functions) · Firebase.

# ---------------------------------------------------------------- project and APIs

resource "google_project_service" "enabled" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "eventarc.googleapis.com",
    "firebase.googleapis.com",
    "firebasehosting.googleapis.com",
    "firebaserules.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com", # signBlob: the auth function signs Firebase custom tokens
    "identitytoolkit.googleapis.com", # Firebase Authentication (custom-token sign-in)
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "serviceusage.googleapis.com",
    "storage.googleapis.com",
  ])
  project = var.project_id
  service = each.value
  # Other workloads of the project may use these too: destroying Vettra leaves them on.
  disable_on_destroy = false
}

# Google's service agents that act for Pub/Sub (dead-lettering, push tokens) and Cloud
# Tasks (OIDC tokens): created now, so the IAM below can name them before first use.
resource "google_project_service_identity" "agent" {
  provider = google-beta
  for_each = toset(["pubsub.googleapis.com", "cloudtasks.googleapis.com"])
  project  = var.project_id
  service  = each.value

  depends_on = [google_project_service.enabled]
}

# ------------------------------------------------------------ configuration (locals)

locals {
  repo_root          = "${path.module}/.."
  firestore_location = var.firestore_location != "" ? var.firestore_location : var.region
  hosting_site_id    = var.hosting_site_id != "" ? var.hosting_site_id : "${var.project_id}-vettra"

  # Each secret is one file the cloud key store reads (formats in docs/terraform.md).
  # Cloud Run mounts one secret per directory, so secret NAME is the file
  # VETTRA_SECRETS_DIR/NAME/NAME.
  secrets_dir = "/etc/vettra/secrets"
  secrets = merge(
    {
      "audit-hmac-key"         = "HMAC-SHA256 keys sealing audit entries: JSON {\"current\": KID, \"keys\": {KID: base64 of 32 bytes}}"
      "checkpoint-signing-key" = "Ed25519 keys signing audit checkpoints: JSON {\"current\": KID, \"keys\": {KID: PEM private key}}"
      "data-key"               = "AES-256-GCM keys sealing stored TOTP seeds: JSON {\"current\": KID, \"keys\": {KID: base64 of 32 bytes}}"
      "policy-trusted-keys"    = "Ed25519 public keys trusted to sign policy bundles: JSON {KID: PEM public key}"
      "auth0-client-secret"    = "The Auth0 backend application's client secret (Token Vault exchange), as text"
      "receipt-signing-key"    = "Ed25519 keys signing credential receipts: JSON {\"current\": KID, \"keys\": {KID: PEM private key}}"
    },
    var.ship_default_policy ? {
      "policy-signing-key" = "Ed25519 private key (PEM) that signs the shipped default policy on first use"
    } : {},
  )

  # The topics of docs/cloud.md: decision events, and "chain has new outbox events".
  topics = {
    events   = "vettra-events"
    sequence = "vettra-sequence"
  }
  # Those and, for each KEY, "KEY-dlq": where its subscription's undeliverable messages go.
  topics_and_dead_letters = merge(local.topics, { for key, name in local.topics : "${key}-dlq" => "${name}-dlq" })

  # One function per target of functions/main.py; the key is the entry point.
  # What each may touch (docs/terraform.md, "Who may do what"):
  #   firestore   project role on Firestore ("" = none)
  #   publishes   topics (keys of local.topics) it publishes to
  #   queue_roles roles on the expiry queue
  #   acts_as     may mint the Cloud Tasks invoker's OIDC token into tasks it creates
  #   secrets     files it mounts (and may read; nothing else)
  #   signs       may sign blobs as itself (Firebase custom tokens)
  #   ingress     ALLOW_ALL: reachable and invocable by anyone (Hosting rewrites need
  #               it; the app checks the bearer of every /api call); ALLOW_INTERNAL_ONLY:
  #               only Google's own callers in the project (Cloud Tasks, Eventarc), and
  #               of those only the account granted run.invoker
  # Privileges default to none: a function may touch only what its entry names (ingress
  # has no default: each function says who may reach it).
  function_defaults = {
    timeout_s = 30, concurrency = 40, max_instances = var.max_instances, trigger = ""
    firestore = "", publishes = [], queue_roles = [], acts_as = false, secrets = [], signs = false
  }
  functions = {
    health = merge(local.function_defaults, {
      description = "GET /health and /api/openapi.json; answers problem+json 404 for /api paths no other function serves"
      ingress     = "ALLOW_ALL", timeout_s = 10, concurrency = 80
      firestore   = "roles/datastore.viewer"
    })
    intercept = merge(local.function_defaults, {
      description = "POST /api/actions/intercept: score, check the policy, decide; arms the expiry task of a pending action"
      ingress     = "ALLOW_ALL"
      firestore   = "roles/datastore.user", publishes = ["events", "sequence"]
      queue_roles = ["roles/cloudtasks.enqueuer", "roles/cloudtasks.viewer"], acts_as = true
      secrets     = ["policy-trusted-keys"]
    })
    approve = merge(local.function_defaults, {
      description = "POST /api/actions/approve: the owner's decision; cancels the expiry task"
      ingress     = "ALLOW_ALL"
      firestore   = "roles/datastore.user", publishes = ["events", "sequence"]
      queue_roles = ["roles/cloudtasks.taskDeleter"]
    })
    actions = merge(local.function_defaults, {
      description = "GET /api/actions/pending and /api/actions/{id} (long-polls ?wait= up to 60 s)"
      ingress     = "ALLOW_ALL", timeout_s = 90, concurrency = 80
      firestore   = "roles/datastore.user"
    })
    audit = merge(local.function_defaults, {
      description = "GET /api/audit/**: entries, verification, checkpoints, public key, proofs"
      ingress     = "ALLOW_ALL", timeout_s = 60
      firestore   = "roles/datastore.user", secrets = ["audit-hmac-key", "checkpoint-signing-key"]
    })
    policy = merge(local.function_defaults, {
      description = "GET/POST /api/policy: the active signed policy, and activating a newer one"
      ingress     = "ALLOW_ALL"
      firestore   = "roles/datastore.user", publishes = ["sequence"], secrets = ["policy-trusted-keys"]
    })
    approvals = merge(local.function_defaults, {
      description = "/api/approvals/**: step-up enrolment and verification, session pre-authorisations"
      ingress     = "ALLOW_ALL"
      firestore   = "roles/datastore.user", publishes = ["sequence"], secrets = ["data-key"]
    })
    auth = merge(local.function_defaults, {
      description = "POST /api/auth/firebase-token: a verified Auth0 ID token for a Firebase custom token"
      ingress     = "ALLOW_ALL", signs = true
    })
    vault = merge(local.function_defaults, {
      description = "POST /api/actions/{id}/credential (the Token Vault exchange), /api/receipts/**, /api/inventory/**, /api/vault/** (connecting accounts)"
      ingress     = "ALLOW_ALL"
      firestore   = "roles/datastore.user", publishes = ["sequence"], secrets = ["data-key", "receipt-signing-key"]
    })
    expire = merge(local.function_defaults, {
      description = "POST /api/tasks/expire: Cloud Tasks' expiry timers (OIDC token of the invoker account only)"
      ingress     = "ALLOW_INTERNAL_ONLY", timeout_s = 60, concurrency = 20
      firestore   = "roles/datastore.user", publishes = ["events", "sequence"]
      queue_roles = ["roles/cloudtasks.enqueuer", "roles/cloudtasks.viewer"], acts_as = true
    })
    sequence = merge(local.function_defaults, {
      description = "Pub/Sub-triggered audit sequencer: drains the outbox of the chain named in the message"
      ingress     = "ALLOW_INTERNAL_ONLY", timeout_s = 300, concurrency = 1, max_instances = 3, trigger = "sequence"
      firestore   = "roles/datastore.user", secrets = ["audit-hmac-key", "checkpoint-signing-key"]
    })
  }

  # Files each function mounts: its own list, plus the optional ones of the variables.
  mounts = {
    for name, fn in local.functions : name => distinct(concat(
      fn.secrets,
      var.ship_default_policy && contains(["intercept", "policy"], name) ? ["policy-signing-key"] : [],
      contains(var.auth0_client_secret_targets, name) ? ["auth0-client-secret"] : [],
    ))
  }

  # The expire function's URL is fixed by its name, so it can be known before it
  # exists (intercept and expire itself put it into the tasks they create).
  expire_url = "https://${var.region}-${var.project_id}.cloudfunctions.net/vettra-expire/api/tasks/expire"

  # Exactly the environment of docs/cloud.md (Config.from_env reads it).
  environment = merge(
    {
      VETTRA_BACKEND         = "firestore"
      VETTRA_PROJECT         = var.project_id
      VETTRA_SECRETS_DIR     = local.secrets_dir
      VETTRA_EVENTS_TOPIC    = google_pubsub_topic.main["events"].name
      VETTRA_SEQUENCE_TOPIC  = google_pubsub_topic.main["sequence"].name
      VETTRA_TASKS_QUEUE     = google_cloud_tasks_queue.expire.id
      VETTRA_TASKS_URL       = local.expire_url
      VETTRA_TASKS_INVOKER   = google_service_account.system["tasks-invoker"].email
      VETTRA_AUTH0_ISSUER    = var.auth0_issuer
      VETTRA_AUTH0_AUDIENCE  = var.auth0_audience
      VETTRA_AUTH0_CLIENT_ID = var.auth0_client_id
      VETTRA_LOG_LEVEL       = var.log_level
    },
    var.auth0_jwks_url != "" ? { VETTRA_AUTH0_JWKS_URL = var.auth0_jwks_url } : {},
    var.vault_redirect_uri != "" ? { VETTRA_VAULT_REDIRECT_URI = var.vault_redirect_uri } : {},
  )

  # Grants, flattened for for_each ("function:thing" keys).
  firestore_grants = { for name, fn in local.functions : name => fn.firestore if fn.firestore != "" }
  topic_grants = merge([
    for name, fn in local.functions : { for topic in fn.publishes : "${name}:${topic}" => { fn = name, topic = topic } }
  ]...)
  queue_grants = merge([
    for name, fn in local.functions : { for role in fn.queue_roles : "${name}:${role}" => { fn = name, role = role } }
  ]...)
  secret_grants = merge([
    for name, files in local.mounts : { for file in files : "${name}:${file}" => { fn = name, secret = file } }
  ]...)

  firestore_indexes = jsondecode(file("${local.repo_root}/firestore.indexes.json"))
}

# ------------------------------------------------------------------------- Firestore

resource "google_firestore_database" "main" {
  project     = var.project_id
  name        = "(default)"
  location_id = local.firestore_location
  type        = "FIRESTORE_NATIVE"
  # Transactions lock the documents they read (docs/firestore.md relies on it).
  concurrency_mode                  = "PESSIMISTIC"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = var.firestore_point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = var.firestore_delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  # `terraform destroy` leaves the database (and so the audit log) in place.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.enabled]
}

# The composite indexes of firestore.indexes.json, read from that file (one source of
# truth with the emulator tests and `firebase deploy`'s format).
resource "google_firestore_index" "composite" {
  for_each = {
    for index in local.firestore_indexes.indexes :
    "${index.collectionGroup}:${join(",", [for f in index.fields : f.fieldPath])}" => index
  }
  project     = var.project_id
  database    = google_firestore_database.main.name
  collection  = each.value.collectionGroup
  query_scope = each.value.queryScope

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.fieldPath
      order        = try(fields.value.order, null)
      array_config = try(fields.value.arrayConfig, null)
    }
  }
}

# Its fieldOverrides: large text fields exempt from single-field indexing (an empty
# index_config disables every index on the field).
resource "google_firestore_field" "override" {
  for_each = {
    for override in local.firestore_indexes.fieldOverrides :
    "${override.collectionGroup}.${override.fieldPath}" => override
  }
  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = each.value.collectionGroup
  field      = each.value.fieldPath

  index_config {
    dynamic "indexes" {
      for_each = each.value.indexes
      content {
        query_scope  = try(indexes.value.queryScope, null)
        order        = try(indexes.value.order, null)
        array_config = try(indexes.value.arrayConfig, null)
      }
    }
  }
}

# Security rules: firestore.rules at the top of the repository, released to the
# default database. Clients (the dashboard's listeners) read under these; they write
# nothing. The functions use service accounts, which rules do not apply to.
resource "google_firebaserules_ruleset" "firestore" {
  project = var.project_id
  source {
    files {
      name    = "firestore.rules"
      content = file("${local.repo_root}/firestore.rules")
    }
  }

  depends_on = [google_firestore_database.main]
}

resource "google_firebaserules_release" "firestore" {
  project      = var.project_id
  name         = "cloud.firestore"
  ruleset_name = "projects/${var.project_id}/rulesets/${google_firebaserules_ruleset.firestore.name}"

  lifecycle {
    replace_triggered_by = [google_firebaserules_ruleset.firestore]
  }
}

# --------------------------------------------------------------------------- secrets

# The secrets only: their values are added by the operator (docs/terraform.md,
# "Secrets"), never by Terraform, so no key is ever in the Terraform state.
resource "google_secret_manager_secret" "key" {
  # Google-managed encryption at rest: a Cloud KMS key would add cost and an
  # availability dependency without changing who can read (the IAM below decides).
  for_each  = local.secrets
  project   = var.project_id
  secret_id = "vettra-${each.key}"
  labels    = var.labels
  annotations = {
    format = each.value
  }

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_iam_member" "mounted" {
  for_each  = local.secret_grants
  project   = var.project_id
  secret_id = google_secret_manager_secret.key[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.fn[each.value.fn].member
}

# ------------------------------------------------- messaging: Pub/Sub, Tasks, Scheduler

# The topics, and where messages go after max_delivery_attempts failed deliveries
# ("<topic>-dlq", keys "events-dlq" and "sequence-dlq").
resource "google_pubsub_topic" "main" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; messages carry ids and event types, not secrets (docs/events.md).
  for_each = local.topics_and_dead_letters
  project  = var.project_id
  name     = each.value
  labels   = var.labels

  depends_on = [google_project_service.enabled]
}

# The dead-letter topics were a resource of their own: a deployed stack keeps them (and
# the dead letters they hold).
moved {
  from = google_pubsub_topic.dead_letter["events"]
  to   = google_pubsub_topic.main["events-dlq"]
}

moved {
  from = google_pubsub_topic.dead_letter["sequence"]
  to   = google_pubsub_topic.main["sequence-dlq"]
}

# Pull subscriptions "<topic>-sub" for notification workers and operators' tools.
# The sequence function does not read vettra-sequence-sub: its Pub/Sub trigger gets a
# push subscription of its own from Eventarc (below).
resource "google_pubsub_subscription" "main" {
  for_each = local.topics
  project  = var.project_id
  name     = "${each.value}-sub"
  topic    = google_pubsub_topic.main[each.key].id
  labels   = var.labels

  ack_deadline_seconds = 60
  # A sequence trigger older than ten minutes is moot (the safety net has fired since).
  message_retention_duration = each.key == "sequence" ? "600s" : "86400s"
  enable_message_ordering    = each.key == "sequence" # ordering key = the chain

  expiration_policy {
    ttl = "" # never expires while idle
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.main["${each.key}-dlq"].id
    max_delivery_attempts = 5
  }
}

# A topic with no subscription drops what it gets: keep dead letters a week to inspect.
resource "google_pubsub_subscription" "dead_letter" {
  for_each = local.topics
  project  = var.project_id
  name     = "${each.value}-dlq-sub"
  topic    = google_pubsub_topic.main["${each.key}-dlq"].id
  labels   = var.labels

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering is done by Pub/Sub's service agent: it publishes to the dead-letter
# topic and acknowledges the message on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = local.topics
  project  = var.project_id
  topic    = google_pubsub_topic.main["${each.key}-dlq"].name
  role     = "roles/pubsub.publisher"
  member   = google_project_service_identity.agent["pubsub.googleapis.com"].member
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each     = local.topics
  project      = var.project_id
  subscription = google_pubsub_subscription.main[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = google_project_service_identity.agent["pubsub.googleapis.com"].member
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.topic_grants
  project  = var.project_id
  topic    = google_pubsub_topic.main[each.value.topic].name
  role     = "roles/pubsub.publisher"
  member   = google_service_account.fn[each.value.fn].member
}

# One task per pending action, POSTed to the expire function at its deadline with
# an OIDC token of the invoker account. Delivery is at least once; expire is
# idempotent. A failed delivery is retried with backoff for up to a day (reads and
# approvals treat an overdue action as expired meanwhile).
resource "google_cloud_tasks_queue" "expire" {
  project  = var.project_id
  name     = "vettra-expire"
  location = var.region

  rate_limits {
    max_dispatches_per_second = 100
    max_concurrent_dispatches = 50
  }

  retry_config {
    max_attempts       = 100
    max_retry_duration = "86400s"
    min_backoff        = "1s"
    max_backoff        = "300s"
    max_doublings      = 8
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  depends_on = [google_project_service.enabled]
}

resource "google_cloud_tasks_queue_iam_member" "scheduler" {
  for_each = local.queue_grants
  project  = var.project_id
  location = var.region
  name     = google_cloud_tasks_queue.expire.name
  role     = each.value.role
  member   = google_service_account.fn[each.value.fn].member
}

# The safety net: the Pub/Sub trigger is how the sequencer normally runs; a trigger
# lost or failed past its retries delays sequencing by at most one period.
resource "google_cloud_scheduler_job" "sequence_safety_net" {
  for_each    = var.sequencer_safety_net ? toset(var.tenants) : toset([])
  project     = var.project_id
  region      = var.region
  name        = "vettra-sequence-${each.key}"
  description = "Poke the audit sequencer for chain ${each.key} (safety net)"
  schedule    = var.sequencer_safety_net_schedule
  time_zone   = "Etc/UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.main["sequence"].id
    data       = base64encode(jsonencode({ chain = each.key }))
  }

  retry_config {
    retry_count = 0 # the next tick is the retry
  }

  depends_on = [google_project_service.enabled]
}

# ---------------------------------------------------------------- functions: source

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only the built function source (public code); Cloud Audit Logs record who changes it, a log bucket would add cost for nothing secret.
  project                     = var.project_id
  name                        = "${var.project_id}-vettra-functions"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # reproducible from the repository
  labels                      = var.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# `make functions-bundle` first: this zips what it wrote.
data "archive_file" "functions" {
  type        = "zip"
  source_dir  = "${path.module}/${var.bundle_dir}"
  output_path = "${path.module}/../build/functions.zip"
}

resource "google_storage_bucket_object" "bundle" {
  name   = "functions-${data.archive_file.functions.output_md5}.zip" # new content, new object: redeploys
  bucket = google_storage_bucket.source.name
  source = data.archive_file.functions.output_path
}

# The images Cloud Build makes of the functions; only recent ones are kept.
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption; the images hold the public source and PyPI packages, no secret (secrets are mounted at run time).
  project       = var.project_id
  location      = var.region
  repository_id = "vettra-functions"
  description   = "Images of the Vettra functions (built by Cloud Functions from the bundle)"
  format        = "DOCKER"
  labels        = var.labels

  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 2
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "604800s"
    }
  }

  depends_on = [google_project_service.enabled]
}

# ------------------------------------------------------ functions: service accounts

resource "google_service_account" "fn" {
  for_each     = local.functions
  project      = var.project_id
  account_id   = "vettra-${each.key}"
  display_name = "Vettra function ${each.key}"
  description  = "Runs only the ${each.key} function: ${each.value.description}"

  depends_on = [google_project_service.enabled]
}

# The accounts of Vettra's own plumbing, each allowed one thing (IAM below):
#   tasks-invoker     Cloud Tasks attaches its OIDC token to expiry tasks; the expire
#                     function accepts no one else (VETTRA_TASKS_INVOKER)
#   sequence-trigger  Eventarc delivers the sequence topic's messages as it
#   functions-build   Cloud Build builds the function images as it (not the default
#                     compute account)
resource "google_service_account" "system" {
  for_each = {
    tasks-invoker    = "Identity of expiry tasks: may invoke the expire function, nothing else"
    sequence-trigger = "Identity of the Pub/Sub trigger: may invoke the sequence function, nothing else"
    functions-build  = "Builds the function images: reads the source, writes vettra-functions images and build logs"
  }
  project      = var.project_id
  account_id   = "vettra-${each.key}"
  display_name = "Vettra ${each.key}"
  description  = each.value

  depends_on = [google_project_service.enabled]
}

# ------------------------------------------------------------------ functions: IAM

# Firestore's IAM is per project: user (read and write documents) or viewer (read).
resource "google_project_iam_member" "firestore" {
  for_each = local.firestore_grants
  project  = var.project_id
  role     = each.value
  member   = google_service_account.fn[each.key].member
}

# Creating a task with an OIDC token of the invoker needs actAs on that account.
resource "google_service_account_iam_member" "acts_as_invoker" {
  for_each           = { for name, fn in local.functions : name => fn if fn.acts_as }
  service_account_id = google_service_account.system["tasks-invoker"].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.fn[each.key].member
}

# Cloud Tasks' service agent mints those tokens (older projects lack the grant).
resource "google_service_account_iam_member" "tasks_agent_mints_invoker_tokens" {
  service_account_id = google_service_account.system["tasks-invoker"].name
  role               = "roles/iam.serviceAccountOpenIdTokenCreator"
  member             = google_project_service_identity.agent["cloudtasks.googleapis.com"].member
}

# Firebase custom tokens are signed through IAM signBlob as the function's own
# account: token creator on itself only.
resource "google_service_account_iam_member" "signs_as_itself" {
  for_each           = { for name, fn in local.functions : name => fn if fn.signs }
  service_account_id = google_service_account.fn[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.fn[each.key].member
}

# Pub/Sub's service agent mints the push tokens of the Eventarc subscription as the
# trigger account (needed in projects older than April 2021).
resource "google_service_account_iam_member" "pubsub_agent_mints_trigger_tokens" {
  service_account_id = google_service_account.system["sequence-trigger"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_project_service_identity.agent["pubsub.googleapis.com"].member
}

resource "google_project_iam_member" "trigger_receives_events" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.system["sequence-trigger"].member
}

resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/logging.logWriter",
    # Cloud Functions copies the source into its own gcf-v2-sources-* bucket, which
    # the build reads; that bucket is made by the service, so the grant is per project.
    "roles/storage.objectViewer",
  ])
  project = var.project_id
  role    = each.value
  member  = google_service_account.system["functions-build"].member
}

resource "google_artifact_registry_repository_iam_member" "build_writes_images" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.system["functions-build"].member
}

# Anyone may call the public functions: Firebase Hosting rewrites cannot send platform
# credentials, and agents bring Auth0 tokens, not Google ones. The app authenticates
# every /api request (only /health is open).
resource "google_cloud_run_v2_service_iam_member" "public" {
  for_each = { for name, fn in local.functions : name => fn if fn.ingress == "ALLOW_ALL" }
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The two internal functions accept only their own caller: Cloud Tasks' invoker account
# for expire, the Pub/Sub trigger's for sequence.
resource "google_cloud_run_v2_service_iam_member" "internal_invoker" {
  for_each = { expire = "tasks-invoker", sequence = "sequence-trigger" }
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.system[each.value].member
}

# Those two grants were a resource each: a deployed stack keeps them (no revoke and re-grant).
moved {
  from = google_cloud_run_v2_service_iam_member.tasks_invoke_expire
  to   = google_cloud_run_v2_service_iam_member.internal_invoker["expire"]
}

moved {
  from = google_cloud_run_v2_service_iam_member.trigger_invokes_sequence
  to   = google_cloud_run_v2_service_iam_member.internal_invoker["sequence"]
}

# ------------------------------------------------------------ functions: the functions

resource "google_cloudfunctions2_function" "fn" {
  #checkov:skip=CKV_GCP_124:The HTTP API functions take ALLOW_ALL by design (Firebase Hosting rewrites and agents call them; every /api route authenticates its bearer token, only /health is open). expire and sequence are ALLOW_INTERNAL_ONLY and pass; tests/unit/test_terraform.py keeps them so.
  for_each    = local.functions
  project     = var.project_id
  name        = "vettra-${each.key}"
  location    = var.region
  description = each.value.description
  labels      = var.labels

  build_config {
    runtime           = var.python_runtime
    entry_point       = each.key
    service_account   = google_service_account.system["functions-build"].id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.bundle.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn[each.key].email
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    min_instance_count               = 0 # idle costs nothing (docs/terraform.md, "Cost")
    max_instance_count               = each.value.max_instances
    max_instance_request_concurrency = each.value.concurrency
    available_cpu                    = "1" # concurrency above 1 needs a whole vCPU
    available_memory                 = "512Mi"
    timeout_seconds                  = each.value.timeout_s
    environment_variables            = local.environment

    dynamic "secret_volumes" {
      for_each = toset(local.mounts[each.key])
      content {
        mount_path = "${local.secrets_dir}/${secret_volumes.value}"
        project_id = var.project_id
        secret     = google_secret_manager_secret.key[secret_volumes.value].secret_id
        versions {
          version = "latest" # a volume re-reads Secret Manager: rotations apply without redeploy
          path    = secret_volumes.value
        }
      }
    }
  }

  dynamic "event_trigger" {
    for_each = each.value.trigger != "" ? [each.value.trigger] : []
    content {
      trigger_region        = var.region
      event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
      pubsub_topic          = google_pubsub_topic.main[event_trigger.value].id
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.system["sequence-trigger"].email
    }
  }

  lifecycle {
    precondition {
      condition     = alltrue([for t in var.auth0_client_secret_targets : contains(keys(local.functions), t)])
      error_message = "auth0_client_secret_targets may name only targets of functions/main.py."
    }
  }

  # A deploy checks that the account can read every secret it mounts.
  depends_on = [
    google_secret_manager_secret_iam_member.mounted,
    google_project_iam_member.build,
    google_artifact_registry_repository_iam_member.build_writes_images,
  ]
}

# -------------------------------------------------------------------------- Firebase

resource "google_firebase_project" "this" {
  provider = google-beta
  project  = var.project_id

  depends_on = [google_project_service.enabled]
}

# The dashboard's Firebase web app: its config (outputs.tf) lets the browser sign in
# with the custom token the auth function makes and listen to Firestore.
resource "google_firebase_web_app" "dashboard" {
  provider        = google-beta
  project         = var.project_id
  display_name    = "Vettra dashboard"
  deletion_policy = "DELETE"

  depends_on = [google_firebase_project.this]
}

data "google_firebase_web_app_config" "dashboard" {
  provider   = google-beta
  project    = var.project_id
  web_app_id = google_firebase_web_app.dashboard.app_id
}

# The Hosting site; its content and rewrites (/api/** → the functions) are
# firebase.json at the top of the repository, deployed with
# `firebase deploy --only hosting:dashboard` (cloudbuild.yaml).
resource "google_firebase_hosting_site" "dashboard" {
  provider = google-beta
  project  = var.project_id
  site_id  = local.hosting_site_id
  app_id   = google_firebase_web_app.dashboard.app_id

  depends_on = [google_project_service.enabled]
}
