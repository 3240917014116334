/**
 * Agent sessions: what each of your agents has open, pre-authorise one up to a level
 * for a while (one step-up bound to that session; HIGH is never pre-authorised), and
 * revoke one (effective on its next request).
 */
import { api } from "../api.js";
import { announce, clear, h } from "../dom.js";
import { stepUpPanel } from "../stepup.js";

const DURATIONS = [
  [900, "15 minutes"],
  [1800, "30 minutes"],
  [3600, "1 hour"],
  [4 * 3600, "4 hours"],
];

function when(value) {
  return value ? new Date(value).toLocaleString() : "—";
}

function state(s) {
  if (s.revoked_at) return "revoked";
  if (!s.active) return "expired";
  return s.preauth_active ? `active · pre-authorised up to ${s.preauth.max_level} until ${new Date(s.preauth.until).toLocaleTimeString()}` : "active";
}

export class SessionsPage {
  mount(root) {
    this.body = h("div");
    this.el = h(
      "section",
      { className: "page sessions", "aria-labelledby": "sessions-title" },
      h("h1", { id: "sessions-title" }, "Sessions"),
      h("p", { className: "hint" }, "An agent opens a session for a piece of work. Pre-authorising it lets its LOW/MEDIUM requests run without asking you, for a while; HIGH ones always ask."),
      this.body,
    );
    root.append(this.el);
    this.refresh();
  }

  unmount() {
    this.el?.remove();
  }

  async refresh() {
    const { sessions } = await api("/api/approvals/sessions");
    clear(this.body);
    if (this.el) this.el.dataset.loaded = "true";
    if (!sessions.length) {
      this.body.append(h("p", { className: "empty" }, "No agent has opened a session for you."));
      return;
    }
    this.body.append(h("ol", { className: "cards" }, ...sessions.map((s) => h("li", {}, this.card(s)))));
  }

  card(s) {
    const panel = h("div", { className: "panel" });
    const titleId = `ses-${s.session_id}`;
    const live = s.active && !s.revoked_at;
    return h(
      "article",
      { className: "card session", dataset: { sessionId: s.session_id }, "aria-labelledby": titleId },
      h("h2", { id: titleId }, s.label || s.session_id),
      h(
        "dl",
        { className: "facts" },
        h("dt", {}, "Session"),
        h("dd", {}, h("code", {}, s.session_id)),
        h("dt", {}, "Agent"),
        h("dd", {}, s.agent || "any of yours"),
        h("dt", {}, "Opened"),
        h("dd", {}, when(s.created_at)),
        h("dt", {}, "Expires"),
        h("dd", {}, when(s.expires_at)),
        h("dt", {}, "State"),
        h("dd", { className: "state" }, state(s)),
      ),
      live
        ? h(
            "div",
            { className: "decide" },
            h("button", { type: "button", className: "preauth", onclick: () => this.preauth(s, panel) }, "Pre-authorise"),
            h("button", { type: "button", className: "deny", onclick: () => this.revoke(s) }, "Revoke"),
          )
        : null,
      panel,
    );
  }

  preauth(s, panel) {
    const level = h("select", { id: `level-${s.session_id}` }, h("option", { value: "MEDIUM" }, "MEDIUM and LOW"), h("option", { value: "LOW" }, "LOW only"));
    const duration = h("select", { id: `duration-${s.session_id}` }, ...DURATIONS.map(([v, t]) => h("option", { value: String(v), selected: v === 1800 }, t)));
    const stepUpSlot = h("div");
    clear(panel).append(
      h(
        "form",
        {
          className: "preauth-form",
          onsubmit: (event) => {
            event.preventDefault();
            clear(stepUpSlot).append(
              stepUpPanel({
                purpose: `preauth:${s.session_id}`,
                verb: "pre-authorise this session",
                onToken: async (token) => {
                  try {
                    await api("/api/approvals/sessions/pre-authorize", {
                      method: "POST",
                      body: { session_id: s.session_id, max_level: level.value, duration_s: Number(duration.value), step_up_token: token },
                    });
                    announce(`Session pre-authorised up to ${level.value}.`);
                    await this.refresh();
                  } catch (error) {
                    clear(stepUpSlot).append(h("p", { className: "error", role: "alert" }, error.message));
                  }
                },
                onCancel: () => clear(panel),
              }),
            );
          },
        },
        h("div", { className: "row" }, h("label", { for: level.id }, "Up to"), level, h("label", { for: duration.id }, "for"), duration, h("button", { type: "submit" }, "Continue")),
        stepUpSlot,
      ),
    );
  }

  async revoke(s) {
    try {
      await api(`/api/approvals/sessions/${encodeURIComponent(s.session_id)}`, { method: "DELETE" });
      announce("Session revoked.");
    } catch (error) {
      announce(`Could not revoke it: ${error.message}`, "error");
    }
    await this.refresh();
  }
}
