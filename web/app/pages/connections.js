/**
 * Connected accounts: which provider accounts Vettra may exchange through Auth0 Token
 * Vault for you, and a Connect button per catalogue connection. Connect asks the
 * server for a single-use authorize URL (POST /api/vault/connections/{c}/authorize)
 * and sends this tab to Auth0; Auth0 sends it back through the server's callback to
 * #/connections?connected=… or ?connect_error=… (nothing secret in either).
 */
import { api } from "../api.js";
import { announce, clear, h } from "../dom.js";

const ERRORS = {
  "invalid-state": "That connection link was already used or is not one Vettra made. Start again.",
  "expired-state": "The connection took longer than ten minutes. Start again.",
  "access-denied": "You declined at the provider; nothing was connected.",
  "authorization-failed": "Auth0 could not authorize the connection.",
  "token-endpoint": "Auth0 refused to complete the connection.",
  "id-token": "Auth0's answer could not be verified; nothing was stored.",
  "wrong-user": "You logged in to Auth0 as another user than the one signed in here; nothing was stored.",
  "no-refresh-token": "Auth0 issued no refresh token (offline access is not allowed for this client).",
  unavailable: "Auth0 could not be reached. Try again.",
  "not-configured": "Connecting accounts is not configured on this deployment.",
};

function when(value) {
  return value ? h("time", { dateTime: value }, new Date(value).toLocaleString()) : "—";
}

/** The outcome the callback put after #/connections?, then the plain route again. */
export function takeOutcome() {
  const hash = window.location.hash;
  const at = hash.indexOf("?");
  if (!hash.startsWith("#/connections") || at < 0) return null;
  const params = new URLSearchParams(hash.slice(at + 1));
  history.replaceState(null, "", `${window.location.pathname}${window.location.search}#/connections`);
  const connection = params.get("connection") || params.get("connected") || "";
  if (params.get("connected")) return { ok: true, text: `${params.get("connected")} is connected.` };
  const code = params.get("connect_error");
  if (code) return { ok: false, text: `${connection ? `${connection}: ` : ""}${ERRORS[code] || "The connection failed."}` };
  return null;
}

export class ConnectionsPage {
  mount(root) {
    this.outcome = h("div", { className: "outcome", "aria-live": "polite" });
    this.list = h("div", { className: "connection-list" });
    this.el = h(
      "section",
      { className: "page connections", "aria-labelledby": "connections-title" },
      h("h1", { id: "connections-title" }, "Connected accounts"),
      h("p", { className: "hint" }, "Agents never hold these accounts: after you approve an action, Vettra exchanges the connection for one short-lived token with only the scopes that action needs."),
      this.outcome,
      this.list,
    );
    root.append(this.el);
    const outcome = takeOutcome();
    if (outcome) {
      this.outcome.append(h("p", { className: outcome.ok ? "ok" : "error", role: outcome.ok ? "status" : "alert" }, outcome.text));
    }
    this.refresh();
  }

  unmount() {
    this.el?.remove();
  }

  async refresh() {
    const { connections, connect } = await api("/api/vault/connections");
    clear(this.list);
    if (this.el) this.el.dataset.loaded = "true";
    if (!connect) this.list.append(h("p", { className: "hint" }, "This deployment cannot connect accounts (Auth0 Token Vault is not configured); `vettra vault link` stores one locally."));
    for (const c of connections) this.list.append(this.card(c, connect));
  }

  card(c, connect) {
    const titleId = `conn-${c.connection}`;
    const chosen = new Set(c.granted_scopes);
    const boxes = c.scopes.map((scope) =>
      h("label", { className: "scope" }, h("input", { type: "checkbox", value: scope, checked: chosen.has(scope) }), " ", h("code", {}, scope)),
    );
    const button = h("button", { type: "button", className: "connect", onclick: () => this.connect(c, boxes, button) }, c.link ? `Reconnect ${c.connection}` : `Connect ${c.connection}`);
    return h(
      "article",
      { className: "card panel-box", dataset: { connection: c.connection }, "aria-labelledby": titleId },
      h("h2", { id: titleId }, c.connection),
      h(
        "dl",
        { className: "facts" },
        h("dt", {}, "Services"),
        h("dd", {}, c.services.join(", ") || "—"),
        h("dt", {}, "Linked"),
        h("dd", { className: "linked" }, c.link ? when(c.link.stored_at) : "not connected"),
        h("dt", {}, "Scopes asked"),
        h("dd", {}, c.link?.scope?.join(" ") || "—"),
      ),
      connect && c.scopes.length
        ? h("fieldset", {}, h("legend", {}, "Ask the provider for"), ...boxes, h("div", { className: "row" }, button))
        : null,
    );
  }

  async connect(c, boxes, button) {
    const scopes = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    if (!scopes.length) {
      announce("Choose at least one scope to connect with.", "error");
      return;
    }
    button.disabled = true;
    try {
      const { authorize_url } = await api(`/api/vault/connections/${encodeURIComponent(c.connection)}/authorize`, { method: "POST", body: { scopes } });
      window.location.assign(authorize_url);
    } catch (error) {
      button.disabled = false;
      announce(`Could not start connecting ${c.connection}: ${error.message}`, "error");
    }
  }
}
