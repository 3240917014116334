/**
 * The session of this tab, whichever way it was made; and local mode's sign-in.
 * (Cloud mode signs in with Auth0 and Firebase in cloud.js and keeps its session here in
 * the same shape, the Auth0 access token as `token`.)
 *
 * Sign-in (local mode). `vettra link` / `vettra dev` print a URL whose fragment holds a
 * one-time code: `/#signin=vsl_…`. Fragments never reach a server or a Referer; the code
 * is removed from the address bar and from this history entry (history.replaceState)
 * before anything else runs, then traded once for a session token
 * (POST /api/dashboard/signin).
 *
 * The token lives in sessionStorage: it belongs to this tab only and is gone when the
 * tab closes, is never sent by the browser on its own (no cookie, so no CSRF), and is
 * not written to disk the way localStorage is. Script on the page could still read it;
 * the strict CSP with Trusted Types is what keeps foreign script off the page. Another
 * tab needs its own link. Sign-out revokes the session on the server
 * (DELETE /api/dashboard/session) and forgets it here.
 */
import { config } from "./config.js";

const KEY = "vettra.session";
const CODE = /^#signin=(vsl_[A-Za-z0-9_-]{43})$/;

export function session() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (saved && Date.parse(saved.expires_at) > Date.now()) return saved;
  } catch {
    /* a damaged entry is no session */
  }
  sessionStorage.removeItem(KEY);
  return null;
}

/** The sign-in code in the URL, removed from the URL and history at once. */
export function takeCodeFromUrl() {
  const match = CODE.exec(window.location.hash);
  const code = match ? match[1] : null;
  if (window.location.hash.startsWith("#signin=")) {
    history.replaceState(null, "", window.location.pathname + "#/queue");
  }
  return code;
}

export async function redeem(code) {
  const response = await fetch("/api/dashboard/signin", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ code }),
    cache: "no-store",
    credentials: "omit",
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error(data?.detail || `sign-in failed (HTTP ${response.status})`);
  }
  return saveSession({
    token: data.access_token,
    sub: data.sub,
    role: data.role,
    tenant: data.tenant,
    expires_at: data.expires_at,
  });
}

/** Keep `{token, sub, role, tenant, expires_at}` as this tab's session. */
export function saveSession(saved) {
  sessionStorage.setItem(KEY, JSON.stringify(saved));
  return saved;
}

export async function signOut() {
  const current = session();
  sessionStorage.removeItem(KEY);
  if (config.mode === "cloud") {
    // Firebase signOut, then Auth0's logout, which brings the tab back signed out
    const { signOutCloud } = await import("./cloud.js");
    await signOutCloud();
    return;
  }
  if (!current) return;
  try {
    await fetch("/api/dashboard/session", {
      method: "DELETE",
      headers: { Authorization: `Bearer ${current.token}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    /* offline: the token is forgotten here and lapses at its expiry */
  }
}

export function forget() {
  sessionStorage.removeItem(KEY);
}
