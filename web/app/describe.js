/**
 * Plain language for a held action: a one-line summary, and which arguments matter
 * (outside recipients, amounts of money, public sharing, roles granted, what is
 * deleted). Pure functions of the action view; the queue renders what they return.
 */
import { config } from "./config.js";

const EMAIL = /^[^\s@<>]+@([^\s@<>]+\.[^\s@<>]+)$/;
const RECIPIENT_KEYS = new Set(["to", "cc", "bcc", "recipient", "recipients", "email", "member", "user"]);
const AMOUNT_KEYS = /^(amount|amount_cents|value|price|total|sum)$/i;
const ZERO_DECIMAL = new Set(["jpy", "krw", "vnd", "clp", "isk", "huf", "twd", "ugx"]);
const SHARE_KEYS = /(type|visibility|audience|share|access|scope)/i;
const PUBLIC_VALUES = new Set(["anyone", "public", "anyone_with_link", "anyonewithlink"]);
const ROLE_KEYS = /(role|permission|privilege|access_level|scope)/i;
const TARGET_KEYS = /^(repo|repository|project|file|file_id|path|name|id|customer|channel|calendar|account)$/i;

/** The catalogue's own description of the tool, from the first risk reason. */
export function catalogueText(action) {
  const first = action.risk?.reasons?.[0] || "";
  const match = /matches catalogue entry '[^']*': (.+)$/.exec(first);
  return match ? match[1] : "";
}

function addresses(value) {
  const list = Array.isArray(value) ? value : String(value ?? "").split(",");
  return list.map((v) => String(v).trim().replace(/^.*<([^>]+)>.*$/, "$1")).filter(Boolean);
}

function domainOf(address) {
  const plain = address.replace(/^user:|^group:|^serviceAccount:/, "");
  const match = EMAIL.exec(plain);
  return match ? match[1].toLowerCase() : null;
}

export function isOutside(address) {
  const domain = domainOf(address);
  if (!domain) return false;
  return !config.orgDomains.some((org) => domain === org || domain.endsWith(`.${org}`));
}

export function money(amount, currency) {
  const code = String(currency || "usd").toUpperCase();
  const minor = ZERO_DECIMAL.has(code.toLowerCase()) ? 1 : 100;
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency: code }).format(Number(amount) / minor);
  } catch {
    return `${Number(amount) / minor} ${code}`;
  }
}

/** [{key, value, kind, note}] for the arguments that matter; kind picks the highlight. */
export function highlights(action) {
  const args = action.arguments || {};
  const out = [];
  for (const [key, value] of Object.entries(args)) {
    const lower = key.toLowerCase();
    if (RECIPIENT_KEYS.has(lower)) {
      for (const address of addresses(value)) {
        if (!domainOf(address)) continue;
        out.push(
          isOutside(address)
            ? { key, value: address, kind: "outside", note: "outside your organisation" }
            : { key, value: address, kind: "recipient", note: "inside your organisation" },
        );
      }
    } else if (AMOUNT_KEYS.test(key) && typeof value === "number") {
      out.push({ key, value: money(value, args.currency), kind: "money", note: "money moves" });
    } else if (lower === "public" || lower === "anyone_with_link") {
      if (value === true) out.push({ key, value: "true", kind: "public", note: "shared publicly" });
    } else if (SHARE_KEYS.test(key) && PUBLIC_VALUES.has(String(value).toLowerCase())) {
      out.push({ key, value: String(value), kind: "public", note: "shared publicly" });
    } else if (ROLE_KEYS.test(key) && typeof value !== "object") {
      out.push({ key, value: String(value), kind: "role", note: "grants access" });
    }
  }
  return out;
}

/** Which argument keys to mark in the exact arguments view. */
export function markedKeys(action) {
  return new Set(highlights(action).map((h) => h.key));
}

function firstOf(args, pattern) {
  for (const [key, value] of Object.entries(args)) {
    if (pattern.test(key) && (typeof value === "string" || typeof value === "number")) return String(value);
  }
  return "";
}

/** The resource the action touches: the bundle's own, else the most telling argument. */
export function target(action) {
  if (action.resource) return action.resource;
  const args = action.arguments || {};
  const recipients = ["to", "recipient", "member"].flatMap((k) => (args[k] ? addresses(args[k]) : []));
  if (recipients.length) return recipients.join(", ");
  return firstOf(args, TARGET_KEYS) || "—";
}

const TEMPLATES = [
  [/^(gmail|outlook|email)\.send/, (a) => {
    const to = addresses(a.to).join(", ") || "someone";
    return `Send an email to ${to}${a.subject ? `: “${a.subject}”` : ""}`;
  }],
  [/\.delete_repo(sitory)?$|\.delete_project$/, (a) => `Delete the repository ${a.repo || a.repository || a.project || ""}`.trim()],
  [/^stripe\.(create_charge|charge)/, (a) => `Charge ${money(a.amount, a.currency)}${a.customer ? ` to customer ${a.customer}` : ""}`],
  [/\.(grant_role|add_member|set_role|assign_role)$/, (a) => `Give ${a.member || a.user || "someone"} the role ${a.role || "?"}`],
  [/\.get_profile$/, () => "Read the user's profile"],
];

export function summary(action) {
  const args = action.arguments || {};
  for (const [pattern, make] of TEMPLATES) {
    if (pattern.test(action.tool || "")) return make(args);
  }
  const text = catalogueText(action);
  if (text) return text;
  const [service, operation] = String(action.tool || "unknown.action").split(".");
  return `${(operation || "run").replaceAll("_", " ")} in ${service}`;
}
