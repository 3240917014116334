/**
 * Deployment settings of the dashboard. `vettra dev` serves this file as is (local mode:
 * sign-in by one-time link, live updates from GET /api/events). A cloud deployment
 * (Firebase Hosting) replaces it with mode "cloud" and its Auth0 and Firebase settings;
 * the live source is then Firestore (see live.js).
 */
export const config = Object.freeze({
  mode: "local",
  /** Mirrors the shipped policy's approve-external-email rule: recipients outside these
   * domains are highlighted as outside your organisation. */
  orgDomains: ["example.com"],
});
