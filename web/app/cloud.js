/**
 * Cloud mode (config.mode === "cloud"): sign-in with Auth0, then Firebase; Firestore
 * listeners for the live queue. Loaded only in cloud mode (a dynamic import from main.js,
 * auth.js and live.js), so local mode never fetches the Firebase bundle.
 *
 * Sign-in is OAuth 2.0's authorization code flow with PKCE (RFC 7636, S256) through
 * Auth0's Universal Login, with oauth4webapi (vendor/oauth4webapi) doing the protocol:
 *
 *   1. beginSignIn(): a fresh code verifier, state and nonce are kept in sessionStorage
 *      (this tab only), and the tab goes to ISSUER/authorize.
 *   2. Auth0 comes back to /?code=…&state=…. completeSignIn() removes the query from the
 *      address bar and from this history entry before anything else, checks the state,
 *      trades the code and the verifier at ISSUER/oauth/token (a public client: no secret),
 *      and checks the ID token's claims (issuer, audience, expiry, nonce; the token came
 *      straight from the token endpoint over TLS, so its signature is the server's to
 *      check, which /api/auth/firebase-token does).
 *   3. The ID token goes to POST /api/auth/firebase-token, whose Firebase custom token
 *      signs in to Firebase Auth (signInWithCustomToken): Firestore then reads as that
 *      uid with the claims firestore.rules check.
 *   4. The Auth0 access token (audience = the Vettra API) is the bearer token of every API
 *      call, kept in sessionStorage exactly as local mode keeps its session token.
 *
 * Sign-out forgets the session, signs out of Firebase and ends the Auth0 session
 * (ISSUER/v2/logout, which returns to this origin).
 */
import * as oauth from "../vendor/oauth4webapi/index.js";
import {
  browserSessionPersistence,
  collection,
  connectAuthEmulator,
  connectFirestoreEmulator,
  getFirestore,
  initializeApp,
  initializeAuth,
  onSnapshot,
  orderBy,
  query,
  signInWithCustomToken,
  signOut as firebaseSignOut,
  where,
} from "../vendor/firebase/firebase.js";
import { saveSession } from "./auth.js";
import { config } from "./config.js";

export { onSnapshot };

const PENDING = "vettra.oauth";
const SCOPE = "openid profile email";
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

const issuer = new URL(config.auth0.issuer);
const server = {
  issuer: issuer.href,
  authorization_endpoint: new URL("authorize", issuer).href,
  token_endpoint: new URL("oauth/token", issuer).href,
};
const client = { client_id: config.auth0.clientId };
// plain http only for a provider on this machine (the tests' stand-in for Auth0)
const transport =
  issuer.protocol === "http:" && LOOPBACK.has(issuer.hostname)
    ? { [oauth.allowInsecureRequests]: true }
    : {};

function redirectUri() {
  return `${window.location.origin}/`;
}

export async function beginSignIn() {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const route = /^#\/[a-z]+$/.test(window.location.hash) ? window.location.hash : "#/queue";
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, nonce, route }));
  const url = new URL(server.authorization_endpoint);
  url.search = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: redirectUri(),
    response_type: "code",
    scope: SCOPE,
    audience: config.auth0.audience,
    state,
    nonce,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  }).toString();
  window.location.assign(url.href);
}

/** True when this load is Auth0's redirect back (?code=…&state=… or ?error=…). */
export function isCallback() {
  const params = new URLSearchParams(window.location.search);
  return params.has("state") && (params.has("code") || params.has("error"));
}

export async function completeSignIn() {
  const params = new URLSearchParams(window.location.search);
  const pending = readPending();
  history.replaceState(null, "", window.location.pathname + (pending?.route || "#/queue"));
  if (!pending) throw new Error("This sign-in was not started in this tab; sign in again.");
  let tokens;
  try {
    const answer = oauth.validateAuthResponse(server, client, params, pending.state);
    const response = await oauth.authorizationCodeGrantRequest(
      server, client, oauth.None(), answer, redirectUri(), pending.verifier, transport,
    );
    tokens = await oauth.processAuthorizationCodeResponse(server, client, response, {
      expectedNonce: pending.nonce,
      requireIdToken: true,
    });
  } catch (error) {
    const reason = error?.error_description || error?.error || error?.message || "refused";
    throw new Error(`Auth0 sign-in failed: ${reason}`);
  }
  const exchange = await fetch("/api/auth/firebase-token", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ id_token: tokens.id_token }),
    cache: "no-store",
    credentials: "omit",
  });
  const data = await exchange.json().catch(() => null);
  if (!exchange.ok) {
    throw new Error(data?.detail || `Firebase sign-in failed (HTTP ${exchange.status})`);
  }
  await signInWithCustomToken(firebase().auth, data.firebase_token);
  const lifetime = Number(tokens.expires_in) > 0 ? Number(tokens.expires_in) : 3600;
  return saveSession({
    token: tokens.access_token,
    sub: data.uid,
    role: data.vettra_role,
    tenant: data.tenant,
    expires_at: new Date(Date.now() + lifetime * 1000).toISOString(),
  });
}

function readPending() {
  try {
    return JSON.parse(sessionStorage.getItem(PENDING) || "null");
  } catch {
    return null;
  } finally {
    sessionStorage.removeItem(PENDING);
  }
}

let parts = null;

/** The Firebase app, Auth and Firestore, made once (emulators when the config names them). */
export function firebase() {
  if (parts) return parts;
  const app = initializeApp(config.firebase);
  // sessionStorage, like the API token: this tab only, gone when it closes
  const auth = initializeAuth(app, { persistence: browserSessionPersistence });
  const db = getFirestore(app);
  const emulators = config.emulators || {};
  if (emulators.auth) connectAuthEmulator(auth, emulators.auth, { disableWarnings: true });
  if (emulators.firestore) {
    const at = new URL(emulators.firestore);
    connectFirestoreEmulator(db, at.hostname, Number(at.port));
  }
  parts = { app, auth, db };
  return parts;
}

/** The signed-in Firebase user once Auth has read its saved state, or null. */
export async function firebaseUser() {
  const { auth } = firebase();
  await auth.authStateReady();
  return auth.currentUser;
}

/**
 * The Firestore queries of what is pending for `who`, each one firestore.rules lets this
 * user run (docs/firestore.md, "The dashboard's queries"): an approver's own actions and
 * those naming it as a quorum approver (each served by its index in
 * firestore.indexes.json); an admin's whole tenant (equalities only: Firestore merges the
 * single-field indexes).
 */
export function pendingQueries(who) {
  const actions = collection(firebase().db, "actions");
  const pending = [where("tenant", "==", who.tenant), where("status", "==", "pending")];
  if (who.role === "admin") return [query(actions, ...pending)];
  const oldestFirst = orderBy("created_at");
  return [
    query(actions, ...pending, where("user", "==", who.sub), oldestFirst),
    query(actions, ...pending, where("approvers", "array-contains", who.sub), oldestFirst),
  ];
}

export async function signOutCloud() {
  try {
    await firebaseSignOut(firebase().auth);
  } catch {
    /* the Firebase session ends with the tab anyway */
  }
  const logout = new URL("v2/logout", issuer);
  logout.search = new URLSearchParams({ client_id: client.client_id, returnTo: redirectUri() }).toString();
  window.location.assign(logout.href);
}
