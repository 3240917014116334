/**
 * Deployment settings of the dashboard. `vettra dev` serves this file as is (local mode:
 * sign-in by one-time link, live updates from GET /api/events). A cloud deployment
 * (Firebase Hosting) replaces it: `node web/scripts/dist.mjs --config FILE` renders mode
 * "cloud" with its Auth0 and Firebase settings from Terraform's dashboard_config output
 * (docs/dashboard.md, "Cloud mode"); sign-in is then Auth0 + Firebase (cloud.js) and the
 * live source Firestore (live.js).
 */
export const config = Object.freeze({
  mode: "local",
  /** Mirrors the shipped policy's approve-external-email rule: recipients outside these
   * domains are highlighted as outside your organisation. */
  orgDomains: ["example.com"],
});
