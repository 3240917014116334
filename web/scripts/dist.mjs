// Copies the dashboard's deployable files, unchanged, into web/dist/ for Firebase Hosting
// (firebase.json serves web/dist). There is no build step to speak of: `vettra dev` serves
// web/ as it is (docs/dashboard.md). Only what the page loads goes out: no node_modules,
// no manifests. The WASM verifier is the package's committed module
// (shared/vettra/data/verifier.wasm, which `vettra dev` serves at /verifier.wasm too),
// copied byte for byte.
//
// Cloud mode: `node scripts/dist.mjs --config FILE [--firebase-out PATH] [--out DIR]`
// renders the deployment's settings (FILE: `terraform output -json dashboard_config`,
// all public values) into dist/app/config.js, and writes a copy of ../firebase.json
// (default ../firebase.deploy.json) whose Content-Security-Policy allows connections to
// exactly the origins those settings need: the Auth0 issuer, and Firebase Auth and
// Firestore (or their emulators when the settings name them). cloudbuild.yaml's hosting
// step deploys with `firebase deploy --config firebase.deploy.json`.
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = fileURLToPath(new URL("..", import.meta.url));
const SHIPPED = ["index.html", "favicon.svg", "app", "styles", "vendor"];
const GOOGLE = [
  "https://identitytoolkit.googleapis.com", // signInWithCustomToken, account lookups
  "https://securetoken.googleapis.com", // Firebase ID token refresh
  "https://firestore.googleapis.com", // listeners (WebChannel)
];
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

const { values } = parseArgs({
  options: {
    config: { type: "string" },
    out: { type: "string", default: `${root}dist` },
    "firebase-in": { type: "string", default: resolve(root, "..", "firebase.json") },
    "firebase-out": { type: "string" },
  },
});

function fail(message) {
  console.error(`dist.mjs: ${message}`);
  process.exit(2);
}

function text(value, name) {
  if (typeof value !== "string" || value.trim() === "" || value.length > 2048) {
    fail(`${name} must be a non-empty string`);
  }
  return value;
}

/** An origin the browser may reach: https, or http on this machine (tests, emulators). */
function origin(value, name) {
  let url;
  try {
    url = new URL(text(value, name));
  } catch {
    fail(`${name} is not a URL: ${value}`);
  }
  const local = url.protocol === "http:" && LOOPBACK.has(url.hostname);
  if (url.protocol !== "https:" && !local) fail(`${name} must be https (or http on loopback)`);
  if (url.username || url.password || url.search || url.hash) fail(`${name} must be plain`);
  return url;
}

/** The settings a cloud deployment's config.js holds, checked; nothing secret is accepted. */
function cloudConfig(raw) {
  if (raw === null || typeof raw !== "object" || raw.mode !== "cloud") {
    fail('the config must be an object with mode "cloud"');
  }
  const issuer = origin(raw.auth0?.issuer, "auth0.issuer");
  if (issuer.pathname !== "/" || !raw.auth0.issuer.endsWith("/")) {
    fail("auth0.issuer must be https://TENANT.auth0.com/ (no path, ending with / as Auth0's iss does)");
  }
  const firebase = {};
  for (const key of ["apiKey", "authDomain", "projectId", "appId"]) {
    firebase[key] = text(raw.firebase?.[key], `firebase.${key}`);
  }
  const config = {
    mode: "cloud",
    orgDomains: Array.isArray(raw.orgDomains)
      ? raw.orgDomains.map((d, i) => text(d, `orgDomains[${i}]`))
      : ["example.com"],
    auth0: {
      issuer: issuer.href,
      clientId: text(raw.auth0.clientId, "auth0.clientId"),
      audience: text(raw.auth0.audience, "auth0.audience"),
    },
    firebase,
  };
  const emulators = {};
  for (const key of ["auth", "firestore"]) {
    if (raw.emulators?.[key] === undefined) continue;
    const at = origin(raw.emulators[key], `emulators.${key}`);
    if (at.protocol !== "http:") fail(`emulators.${key} must be http on loopback`);
    emulators[key] = at.origin;
  }
  if (Object.keys(emulators).length) config.emulators = emulators;
  const extra = Object.keys(raw).filter((k) => !["mode", "orgDomains", "auth0", "firebase", "emulators"].includes(k));
  if (extra.length) fail(`unknown settings: ${extra.join(", ")}`);
  return config;
}

/** The origins cloud mode connects to, for the CSP's connect-src. */
function connectOrigins(config) {
  const origins = [new URL(config.auth0.issuer).origin];
  const emulators = config.emulators || {};
  if (emulators.auth) origins.push(emulators.auth);
  else origins.push(...GOOGLE.slice(0, 2));
  if (emulators.firestore) origins.push(emulators.firestore);
  else origins.push(GOOGLE[2]);
  return [...new Set(origins)];
}

function renderConfig(config) {
  return [
    "// Rendered by web/scripts/dist.mjs --config from the deployment's settings",
    "// (terraform output -json dashboard_config); every value is public. Do not edit.",
    `export const config = Object.freeze(${JSON.stringify(config, null, 2)});`,
    "",
  ].join("\n");
}

function renderHosting(config, from, to, dist) {
  const hosting = JSON.parse(readFileSync(from, "utf8"));
  const extra = connectOrigins(config).join(" ");
  let found = 0;
  for (const rule of hosting.hosting.headers) {
    for (const header of rule.headers) {
      if (header.key !== "Content-Security-Policy") continue;
      header.value = header.value.replace("connect-src 'self'", `connect-src 'self' ${extra}`);
      found += 1;
    }
  }
  if (found !== 1) fail(`${from} must have one Content-Security-Policy header (has ${found})`);
  hosting.hosting.public = relative(dirname(resolve(to)), resolve(dist)) || ".";
  writeFileSync(to, `${JSON.stringify(hosting, null, 2)}\n`);
  return extra;
}

const dist = resolve(values.out);
let config = null;
if (values.config) {
  let raw;
  try {
    raw = JSON.parse(readFileSync(values.config, "utf8"));
  } catch (error) {
    fail(`cannot read ${values.config} as JSON (${error.message})`);
  }
  config = cloudConfig(raw);
}
rmSync(dist, { recursive: true, force: true });
for (const entry of SHIPPED) cpSync(`${root}${entry}`, `${dist}/${entry}`, { recursive: true });
cpSync(`${root}../shared/vettra/data/verifier.wasm`, `${dist}/verifier.wasm`);
console.log(`dashboard: ${SHIPPED.join(", ")}, verifier.wasm -> ${dist}`);
if (config) {
  writeFileSync(`${dist}/app/config.js`, renderConfig(config));
  const target = values["firebase-out"] || resolve(root, "..", "firebase.deploy.json");
  const extra = renderHosting(config, values["firebase-in"], target, dist);
  console.log(`dashboard: cloud mode (${config.auth0.issuer}); connect-src adds ${extra}; ${target}`);
}
