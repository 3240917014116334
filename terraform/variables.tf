# Inputs. Only project_id and the three Auth0 values have no default; see
# docs/terraform.md for what each one changes.

variable "project_id" {
  description = "The Google Cloud project to deploy into (must have billing enabled)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the functions, the Cloud Tasks queue and the scheduler job. firebase.json's Hosting rewrites name the same region: change both together."
  type        = string
  default     = "europe-west1"
}

variable "firestore_location" {
  description = "Location of the Firestore database (a region such as europe-west1, or a multi-region such as eur3). Empty: the same as region. Cannot be changed after creation."
  type        = string
  default     = ""
}

# python311, not a newer runtime: the WASM verifier's Unicode tables are CPython 3.11's
# (Unicode 14.0.0), and the bridge refuses a module generated for another Unicode version
# (docs/wasm-verifier.md), so on python312 (Unicode 15.0.0) every decision would fall back
# to the Python reference. Raise it only together with a module rebuilt on that Python
# (wasm-verifier/gen/tables.py, then build.sh); tests/unit/test_terraform.py checks both
# agree.
variable "python_runtime" {
  description = "Cloud Functions Python runtime of every function (the package needs Python 3.11 or later; the WASM verifier is used only on the Python whose Unicode version its tables were generated from, 3.11 for the committed module)."
  type        = string
  default     = "python311"

  validation {
    condition     = can(regex("^python3(1[1-9])$", var.python_runtime))
    error_message = "python_runtime must be python311 or later."
  }
}

variable "bundle_dir" {
  description = "The folder `make functions-bundle` writes (main.py, the vendored vettra package, requirements.txt), relative to this module."
  type        = string
  default     = "../build/functions"
}

variable "auth0_issuer" {
  description = "VETTRA_AUTH0_ISSUER: the Auth0 tenant's issuer URL, https://TENANT.auth0.com/ (with the trailing slash Auth0 puts in iss)."
  type        = string

  validation {
    condition     = can(regex("^https://[^/]+/$", var.auth0_issuer))
    error_message = "auth0_issuer must look like https://TENANT.auth0.com/ (https, trailing slash, no path)."
  }
}

variable "auth0_audience" {
  description = "VETTRA_AUTH0_AUDIENCE: the identifier of the Auth0 API that agents' access tokens are issued for."
  type        = string

  validation {
    condition     = length(var.auth0_audience) > 0
    error_message = "auth0_audience must not be empty."
  }
}

variable "auth0_client_id" {
  description = "VETTRA_AUTH0_CLIENT_ID: the client id of the dashboard's Auth0 single-page application (the audience of its ID tokens)."
  type        = string

  validation {
    condition     = length(var.auth0_client_id) > 0
    error_message = "auth0_client_id must not be empty."
  }
}

variable "auth0_jwks_url" {
  description = "VETTRA_AUTH0_JWKS_URL: only to override the default (the issuer's .well-known/jwks.json). Empty: not set."
  type        = string
  default     = ""

  validation {
    condition     = var.auth0_jwks_url == "" || startswith(var.auth0_jwks_url, "https://")
    error_message = "auth0_jwks_url must be empty or an https URL."
  }
}

variable "auth0_client_secret_targets" {
  description = "Targets that mount the Auth0 client secret (the backend application's, for the Token Vault exchange): [\"vault\"] turns Auth0 Token Vault on (give the secret a version first). None by default; the secret itself is always created."
  type        = list(string)
  default     = []
  # checked against the targets in main.tf (a precondition of the functions)
}

variable "vault_redirect_uri" {
  description = "VETTRA_VAULT_REDIRECT_URI: the dashboard's https://HOST/api/vault/callback, registered in Auth0 as an Allowed Callback URL of the Token Vault client; users connect accounts from the dashboard when it is set (with auth0_client_secret_targets = [\"vault\"]). Empty: not offered."
  type        = string
  default     = ""

  validation {
    condition     = var.vault_redirect_uri == "" || can(regex("^https://[^/]+/api/vault/callback$", var.vault_redirect_uri))
    error_message = "vault_redirect_uri must be empty or https://HOST/api/vault/callback."
  }
}

variable "ship_default_policy" {
  description = "Create the policy-signing-key secret and mount it where the shipped default policy is signed on first use (intercept, policy). Off: the operator signs and posts the first policy (docs/terraform.md), and no policy private key is in the cloud."
  type        = bool
  default     = false
}

variable "log_level" {
  description = "VETTRA_LOG_LEVEL of every function."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "max_instances" {
  description = "Upper bound on instances of each HTTP function (a cost and abuse ceiling; each instance serves up to 40 requests at once)."
  type        = number
  default     = 20

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 1000
    error_message = "max_instances must be between 1 and 1000."
  }
}

variable "tenants" {
  description = "Tenants (one audit chain each) the sequencer safety net pokes."
  type        = list(string)
  default     = ["default"]
}

variable "sequencer_safety_net" {
  description = "A Cloud Scheduler job per tenant that publishes a sequence trigger on a schedule, so a lost or failed trigger delays sequencing by at most one period."
  type        = bool
  default     = true
}

variable "sequencer_safety_net_schedule" {
  description = "Cron schedule (UTC) of the safety-net jobs."
  type        = string
  default     = "*/5 * * * *"
}

variable "firestore_point_in_time_recovery" {
  description = "Keep 7 days of Firestore point-in-time recovery (billed as storage the size of the database)."
  type        = bool
  default     = true
}

variable "firestore_delete_protection" {
  description = "Refuse to delete the Firestore database (it holds the audit log)."
  type        = bool
  default     = true
}

variable "hosting_site_id" {
  description = "Firebase Hosting site id (globally unique; the site is https://SITE.web.app). Empty: <project_id>-vettra."
  type        = string
  default     = ""
}

variable "labels" {
  description = "Labels on every resource that takes them."
  type        = map(string)
  default     = { app = "vettra" }
}

variable "org_domains" {
  description = "The dashboard's own mail domains: recipients outside them are highlighted as outside the organisation (written into the dashboard's config.js through the dashboard_config output)."
  type        = list(string)
  default     = ["example.com"]
}
