/**
 * Overview: what is waiting, what was decided (over time and by risk level, from the
 * audit log), whether the chain verifies, and which agent sessions are open.
 */
import { api } from "../api.js";
import { clear, h } from "../dom.js";
import { LEVELS, levelBars, stackedBars } from "../charts.js";

const DECISIONS = {
  "action.approved": "approved",
  "action.denied": "denied",
  "action.expired": "expired",
};
const STEPS_MIN = [1, 5, 15, 60, 360, 1440];
const MIN_BUCKETS = 12; // a time axis even when everything happened in the last minute

function stat(label, value, id) {
  return h("div", { className: "stat" }, h("span", { className: "value", id }, value), label);
}

/** Decisions from the audit entries: automatic ones at intercept, and the decided ones. */
export function decisionsOf(entries) {
  const level = new Map();
  const out = [];
  for (const e of entries) {
    if (e.type === "action.intercepted") {
      level.set(e.action_id, e.data?.risk?.level || "LOW");
      if (e.data?.status === "allowed" || e.data?.status === "denied") {
        out.push({ at: Date.parse(e.at), level: level.get(e.action_id), outcome: e.data.status });
      }
    } else if (DECISIONS[e.type]) {
      out.push({ at: Date.parse(e.at), level: level.get(e.action_id) || "LOW", outcome: DECISIONS[e.type] });
    }
  }
  return out;
}

function buckets(decisions, now) {
  if (!decisions.length) return [];
  const span = (now - Math.min(...decisions.map((d) => d.at))) / 60000;
  const step = STEPS_MIN.find((m) => span / m <= 24) || 1440;
  const count = Math.max(MIN_BUCKETS, Math.min(24, Math.ceil(span / step) || 1));
  const end = Math.ceil(now / (step * 60000)) * step * 60000;
  const out = [];
  for (let i = count - 1; i >= 0; i--) {
    const from = end - (i + 1) * step * 60000;
    const to = from + step * 60000;
    const inside = decisions.filter((d) => d.at >= from && d.at < to);
    const counts = Object.fromEntries(LEVELS.map((l) => [l, inside.filter((d) => d.level === l).length]));
    const label = new Date(from).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    out.push({ label, counts });
  }
  return out;
}

export class OverviewPage {
  constructor({ queue }) {
    this.queue = queue;
  }

  mount(root) {
    this.body = h("div", {}, h("p", { className: "loading" }, "Loading…"));
    this.el = h("section", { className: "page overview", "aria-labelledby": "overview-title" }, h("h1", { id: "overview-title" }, "Overview"), this.body);
    root.append(this.el);
    this.load();
  }

  unmount() {
    this.el?.remove();
  }

  async load() {
    const [page, chain, sessions] = await Promise.all([
      api("/api/audit/entries?limit=1000"),
      api("/api/audit/verify").catch((error) => ({ valid: false, length: 0, first_invalid: { seq: 0, reason: error.message } })),
      api("/api/approvals/sessions").catch(() => ({ sessions: [] })),
    ]);
    const decisions = decisionsOf(page.entries);
    const byLevel = Object.fromEntries(LEVELS.map((l) => [l, decisions.filter((d) => d.level === l).length]));
    const byOutcome = {};
    for (const d of decisions) byOutcome[d.outcome] = (byOutcome[d.outcome] || 0) + 1;
    const active = sessions.sessions.filter((s) => s.active && !s.revoked_at);
    const series = buckets(decisions, Date.now());
    if (this.el) this.el.dataset.loaded = "true";
    clear(this.body).append(
      h(
        "div",
        { className: "stats" },
        stat("waiting for you", String(this.queue?.actions.size ?? 0), "stat-pending"),
        stat("decisions", String(decisions.length), "stat-decisions"),
        stat(chain.valid ? `audit entries, chain valid` : `chain broken at ${chain.first_invalid?.seq}`, String(chain.length), "stat-chain"),
        stat("active agent sessions", String(active.length), "stat-sessions"),
      ),
      h(
        "div",
        { className: "panel-box" },
        h("h2", {}, "Decisions over time"),
        series.length ? stackedBars(series, "Decisions over time, stacked by risk level") : h("p", { className: "empty" }, "No decisions yet."),
        h("p", { className: "legend" }, ...LEVELS.map((l) => h("span", {}, h("span", { className: `swatch swatch-${l}` }), l))),
      ),
      h(
        "div",
        { className: "panel-box" },
        h("h2", {}, "Decisions by risk level"),
        levelBars(byLevel, "Decisions by risk level"),
        h(
          "table",
          { id: "decision-table" },
          h("caption", { className: "hint" }, "The same numbers"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Level"), h("th", { scope: "col" }, "Decisions"))),
          h("tbody", {}, ...LEVELS.map((l) => h("tr", {}, h("th", { scope: "row" }, l), h("td", {}, String(byLevel[l]))))),
        ),
        h("p", {}, Object.entries(byOutcome).map(([k, v]) => `${v} ${k}`).join(" · ") || "—"),
      ),
      h(
        "div",
        { className: "panel-box" },
        h("h2", {}, "Chain status"),
        h(
          "p",
          { className: chain.valid ? "ok" : "bad" },
          chain.valid
            ? `Valid: ${chain.length} entries${chain.uncovered ? `, ${chain.uncovered} awaiting the next signed checkpoint` : ""}.`
            : `Broken at entry ${chain.first_invalid?.seq}: ${chain.first_invalid?.reason}`,
        ),
        h("a", { href: "#/audit" }, "Verify it yourself in the browser"),
      ),
      h(
        "div",
        { className: "panel-box" },
        h("h2", {}, "Active sessions"),
        active.length
          ? h("ul", {}, ...active.map((s) => h("li", {}, `${s.label || s.session_id} — agent ${s.agent || "any"}${s.preauth_active ? `, pre-authorised up to ${s.preauth.max_level}` : ""}`)))
          : h("p", { className: "empty" }, "None."),
        h("a", { href: "#/sessions" }, "Manage sessions"),
      ),
    );
  }
}
