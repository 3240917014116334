/**
 * The API client: bearer token from the session, JSON in and out, RFC 9457 problems as
 * ApiError. A 401 that is not a step-up demand means the session is over: listeners
 * of "vettra:signed-out" show the sign-in screen.
 */
import { session } from "./auth.js";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }

  /** The problem type's last path segment, e.g. "step-up-required". */
  get slug() {
    return String(this.problem.type || "").split("/").pop();
  }
}

export async function api(path, { method = "GET", body, signal, token } = {}) {
  const bearer = token ?? session()?.token;
  const headers = { Accept: "application/json" };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: "no-store",
    credentials: "omit",
  });
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && error.slug === "unauthenticated" && bearer) {
      window.dispatchEvent(new CustomEvent("vettra:signed-out", { detail: error.message }));
    }
    throw error;
  }
  return data;
}
