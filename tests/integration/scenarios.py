"""The hackathon write-up's five threat scenarios, as action bundles."""

READ_PROFILE = {"tool": "user.get_profile", "arguments": {}}
SEND_EMAIL = {
    "tool": "gmail.send_message",
    "arguments": {"to": "bob@example.com", "subject": "Q3 numbers", "body": "See attached."},
}
DELETE_REPO = {"tool": "github.delete_repo", "arguments": {"repo": "acme/api"}}
CHARGE_500 = {
    "tool": "stripe.create_charge",
    "arguments": {"amount": 50000, "currency": "usd", "customer": "cus_123"},
}
GRANT_ADMIN = {
    "tool": "iam.grant_role",
    "arguments": {"member": "user:mallory@evil.example", "role": "admin"},
}

# (bundle, status, level, step_up_required)
EXPECTED = [
    (READ_PROFILE, "allowed", "LOW", False),
    (SEND_EMAIL, "pending", "MEDIUM", False),
    (DELETE_REPO, "pending", "HIGH", True),
    (CHARGE_500, "pending", "HIGH", True),
    (GRANT_ADMIN, "denied", "HIGH", False),
]
