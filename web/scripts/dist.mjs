// Copies the dashboard's deployable files, unchanged, into web/dist/ for Firebase Hosting
// (cloudbuild.yaml's dashboard step runs `npm ci && npm run build`; firebase.json serves
// web/dist). There is no build step to speak of: `vettra dev` serves web/ as it is
// (docs/dashboard.md). Only what the page loads goes out: no node_modules, no manifests.
// The WASM verifier is the package's committed module (shared/vettra/data/verifier.wasm,
// which `vettra dev` serves at /verifier.wasm too), copied byte for byte.
import { cpSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const dist = `${root}dist`;
const SHIPPED = ["index.html", "favicon.svg", "app", "styles", "vendor"];

rmSync(dist, { recursive: true, force: true });
for (const entry of SHIPPED) cpSync(`${root}${entry}`, `${dist}/${entry}`, { recursive: true });
cpSync(`${root}../shared/vettra/data/verifier.wasm`, `${dist}/verifier.wasm`);
console.log(`dashboard: ${SHIPPED.join(", ")}, verifier.wasm -> ${dist}`);
