/**
 * The approval queue: one <article> per pending action, decided in a few seconds.
 *
 * Each card names the tool in its heading and shows a plain-language summary, the
 * target, the risk score with its factors and reasons, the exact arguments with what
 * matters marked, a live countdown, quorum votes, and the Approve and Deny buttons.
 * Deny takes an optional reason, which the agent's long-poll receives. HIGH actions
 * (step_up_required) run the step-up inline. MEDIUM actions can be approved in a
 * batch; HIGH never.
 *
 * Keyboard: j / k (or ↓ / ↑) move between cards, a approves, d denies, x selects for
 * the batch, Shift+A approves the selection, ? shows the shortcuts, Esc closes a panel.
 */
import { api, ApiError } from "../api.js";
import { session } from "../auth.js";
import { announce, clear, h } from "../dom.js";
import { catalogueText, highlights, markedKeys, summary, target } from "../describe.js";
import { stepUpPanel } from "../stepup.js";

const FACTORS = [
  ["action_type", "Action type", 40],
  ["reversibility", "Reversibility", 25],
  ["blast_radius", "Blast radius", 20],
  ["sensitivity", "Sensitivity", 15],
];
const VERBS = { approved: "Approved", denied: "Denied", expired: "Expired", allowed: "Allowed" };
/** After its countdown ends, a card waits this long for the server's expiry event. */
const EXPIRY_GRACE_MS = 4000;
/** Countdowns are redrawn this often, so a shown second is never late by more. */
const TICK_MS = 250;

export class QueuePage {
  constructor({ onCount }) {
    this.onCount = onCount || (() => {});
    this.actions = new Map(); // action_id -> view
    this.cards = new Map(); // action_id -> article
    this.gone = new Set(); // decided ids: a late "created" must not bring them back
    this.selected = new Set();
    this.busy = false;
    this.el = null;
    this.tick = null;
    this.keys = (event) => this.onKey(event);
  }

  // -- the page ------------------------------------------------------------------------
  mount(root) {
    this.list = h("ol", { className: "cards", "aria-label": "Pending actions" });
    this.empty = h("p", { className: "empty" }, "Nothing is waiting for you. New requests appear here as agents make them.");
    this.count = h("p", { className: "count", id: "queue-count", "aria-live": "polite" });
    this.batchButton = h(
      "button",
      { type: "button", id: "batch-approve", disabled: true, onclick: () => this.approveBatch() },
      "Approve selected",
    );
    this.selectAll = h(
      "button",
      { type: "button", className: "secondary", id: "select-medium", onclick: () => this.selectAllMedium() },
      "Select all MEDIUM",
    );
    this.help = h(
      "dialog",
      { id: "shortcuts", "aria-labelledby": "shortcuts-title" },
      h("h2", { id: "shortcuts-title" }, "Keyboard shortcuts"),
      h(
        "dl",
        { className: "shortcuts" },
        ...[
          ["j / ↓", "next action"],
          ["k / ↑", "previous action"],
          ["a", "approve the focused action"],
          ["d", "deny the focused action (asks for a reason)"],
          ["x", "select the focused MEDIUM action for a batch"],
          ["Shift + A", "approve the selected MEDIUM actions"],
          ["Esc", "close a panel"],
          ["?", "show or hide this list"],
        ].flatMap(([k, v]) => [h("dt", {}, h("kbd", {}, k)), h("dd", {}, v)]),
      ),
      h("form", { method: "dialog" }, h("button", { type: "submit" }, "Close")),
    );
    this.el = h(
      "section",
      { className: "page queue", "aria-labelledby": "queue-title" },
      h(
        "div",
        { className: "page-head" },
        h("h1", { id: "queue-title" }, "Approval queue"),
        this.count,
      ),
      h(
        "div",
        { className: "toolbar", role: "group", "aria-label": "Batch approval of MEDIUM actions" },
        this.selectAll,
        this.batchButton,
        h(
          "button",
          { type: "button", className: "link", onclick: () => this.toggleHelp() },
          "Keyboard shortcuts (?)",
        ),
      ),
      this.empty,
      this.list,
      this.help,
    );
    root.append(this.el);
    this.el.dataset.loaded = "true"; // its data comes from the live source
    document.addEventListener("keydown", this.keys);
    this.tick = setInterval(() => this.updateCountdowns(), TICK_MS);
    this.render();
  }

  unmount() {
    document.removeEventListener("keydown", this.keys);
    clearInterval(this.tick);
    this.el?.remove();
    this.el = null;
  }

  // -- data from the live source --------------------------------------------------------
  replaceAll(views) {
    const fresh = new Map(views.filter((v) => v.status === "pending").map((v) => [v.action_id, v]));
    for (const id of [...this.actions.keys()]) if (!fresh.has(id)) this.drop(id);
    for (const view of fresh.values()) this.upsert(view);
    this.render();
  }

  added(view) {
    if (view.status !== "pending" || this.gone.has(view.action_id)) return;
    this.upsert(view);
    this.render();
  }

  decided(event) {
    if (!this.actions.has(event.action_id)) {
      this.gone.add(event.action_id);
      return;
    }
    const view = this.actions.get(event.action_id);
    this.drop(event.action_id);
    this.gone.add(event.action_id);
    announce(`${VERBS[event.status] || event.status}: ${view.tool}`);
    this.render();
  }

  upsert(view) {
    const known = this.actions.get(view.action_id);
    this.actions.set(view.action_id, view);
    if (!known) {
      this.cards.set(view.action_id, this.card(view));
    } else if (JSON.stringify(known.quorum) !== JSON.stringify(view.quorum)) {
      this.refreshQuorum(view);
    }
  }

  drop(id) {
    const card = this.cards.get(id);
    const hadFocus = card && card.contains(document.activeElement);
    const next = card?.parentElement?.nextElementSibling || card?.parentElement?.previousElementSibling;
    card?.parentElement?.remove();
    this.cards.delete(id);
    this.actions.delete(id);
    this.selected.delete(id);
    if (hadFocus) (next?.querySelector("article") || this.el?.querySelector("h1"))?.focus();
  }

  render() {
    this.onCount(this.actions.size); // the nav's badge counts even while another page shows
    if (!this.el) return;
    for (const [id, card] of this.cards) {
      if (!card.isConnected) this.list.append(h("li", { dataset: { actionId: id } }, card));
    }
    const n = this.actions.size;
    this.count.textContent = n === 0 ? "" : `${n} waiting for your decision`;
    this.empty.hidden = n > 0;
    const selected = [...this.selected].filter((id) => this.batchable(this.actions.get(id)));
    this.batchButton.textContent = `Approve ${selected.length} selected MEDIUM`;
    this.batchButton.disabled = selected.length === 0 || this.busy;
    this.selectAll.disabled = ![...this.actions.values()].some((v) => this.batchable(v));
    this.updateCountdowns();
  }

  // -- one card --------------------------------------------------------------------------
  card(view) {
    const id = view.action_id;
    const level = view.risk?.level || "LOW";
    const titleId = `title-${id}`;
    const marked = markedKeys(view);
    const countdown = h("time", { className: "countdown", dateTime: view.expires_at || "" });
    countdown.dataset.expires = view.expires_at || "";
    const approve = h(
      "button",
      {
        type: "button",
        className: "approve",
        "aria-describedby": view.step_up_required ? `stepup-note-${id}` : null,
        onclick: () => this.startApprove(id),
      },
      "Approve",
    );
    const deny = h("button", { type: "button", className: "deny", onclick: () => this.startDeny(id) }, "Deny");
    const panel = h("div", { className: "panel" });
    const article = h(
      "article",
      {
        className: `card level-${level}`,
        tabindex: "-1",
        "aria-labelledby": titleId,
        dataset: { actionId: id, level },
      },
      h(
        "header",
        { className: "card-head" },
        h("h2", { id: titleId }, h("code", {}, view.tool)),
        h("span", { className: `badge badge-${level}` }, `${level} · risk ${view.risk?.score ?? "?"}/100`),
        countdown,
      ),
      h("p", { className: "summary" }, summary(view)),
      view.reason ? h("p", { className: "why" }, view.reason) : null,
      typeof view.context?.reason === "string"
        ? h("p", { className: "agent-reason" }, h("span", { className: "label" }, "The agent says: "), h("q", {}, view.context.reason))
        : null,
      h(
        "dl",
        { className: "facts" },
        h("dt", {}, "Target"),
        h("dd", { className: "target" }, target(view)),
        h("dt", {}, "Agent"),
        h("dd", {}, view.agent || "—"),
        h("dt", {}, "Asked"),
        h("dd", {}, h("time", { dateTime: view.created_at }, new Date(view.created_at).toLocaleTimeString())),
      ),
      this.highlightList(view),
      this.riskBlock(view),
      h(
        "section",
        { className: "args", "aria-label": "Exact arguments" },
        h("h3", {}, "Exact arguments"),
        h(
          "dl",
          { className: "arguments" },
          ...Object.entries(view.arguments || {}).flatMap(([key, value]) => {
            const text = typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value, null, 2);
            const isMarked = marked.has(key);
            return [
              h("dt", { className: isMarked ? "marked" : null }, key),
              h("dd", { className: isMarked ? "marked" : null }, isMarked ? h("mark", {}, h("code", {}, text)) : h("code", {}, text)),
            ];
          }),
        ),
        h("p", { className: "digest" }, "Digest ", h("code", {}, view.args_digest)),
      ),
      this.quorumBlock(view),
      view.step_up_required
        ? h("p", { className: "stepup-note", id: `stepup-note-${id}` }, "HIGH risk: approving asks you to step up (TOTP code or passkey).")
        : null,
      h(
        "div",
        { className: "decide" },
        this.batchable(view)
          ? h(
              "label",
              { className: "select" },
              h("input", {
                type: "checkbox",
                className: "batch-select",
                onchange: (event) => this.toggleSelected(id, event.target.checked),
              }),
              " Select for batch",
            )
          : null,
        approve,
        deny,
      ),
      panel,
    );
    queueMicrotask(() => this.markOwnVote(view));
    article.addEventListener("focusin", () => {
      this.focused = id;
    });
    return article;
  }

  highlightList(view) {
    const items = highlights(view);
    if (items.length === 0) return null;
    return h(
      "ul",
      { className: "highlights", "aria-label": "What matters" },
      ...items.map((item) =>
        h(
          "li",
          { className: `hl hl-${item.kind}` },
          h("span", { className: "hl-key" }, item.key),
          " ",
          h("strong", {}, item.value),
          " — ",
          item.note,
        ),
      ),
    );
  }

  riskBlock(view) {
    const factors = view.risk?.factors || {};
    const description = catalogueText(view);
    return h(
      "section",
      { className: "risk", "aria-label": "Risk" },
      h("h3", {}, `Risk ${view.risk?.score ?? "?"} of 100`),
      h(
        "ul",
        { className: "factors" },
        ...FACTORS.map(([key, label, max]) =>
          h(
            "li",
            {},
            h("span", { className: "factor-name" }, label),
            h("meter", { min: "0", max: String(max), value: String(factors[key] ?? 0), "aria-label": `${label} ${factors[key] ?? 0} of ${max}` }),
            h("span", { className: "factor-value" }, `${factors[key] ?? 0}/${max}`),
          ),
        ),
      ),
      h(
        "details",
        { className: "reasons" },
        h("summary", {}, `Why (${(view.risk?.reasons || []).length} reasons)`),
        description ? h("p", {}, description) : null,
        h("ul", {}, ...(view.risk?.reasons || []).map((r) => h("li", {}, r))),
      ),
    );
  }

  quorumBlock(view) {
    const q = view.quorum;
    if (!q) return null;
    const me = session()?.sub;
    const approvals = new Set(q.approvals || []);
    return h(
      "p",
      { className: "quorum" },
      `Needs ${q.required} of ${q.of.length} approvers (${approvals.size} so far): `,
      ...q.of.flatMap((name, i) => [
        i ? ", " : "",
        h(
          "span",
          { className: approvals.has(name) ? "voted" : "waiting" },
          approvals.has(name) ? `✓ ${name}` : name,
          name === me ? " (you)" : "",
        ),
      ]),
    );
  }

  refreshQuorum(view) {
    const card = this.cards.get(view.action_id);
    const old = card?.querySelector(".quorum");
    const fresh = this.quorumBlock(view);
    if (old && fresh) old.replaceWith(fresh);
    this.markOwnVote(view);
  }

  /** After your vote on a quorum action, Approve is done for you (Deny stays). */
  markOwnVote(view) {
    const approve = this.cards.get(view.action_id)?.querySelector("button.approve");
    const voted = (view.quorum?.approvals || []).includes(session()?.sub);
    if (approve && voted) {
      approve.disabled = true;
      approve.textContent = "Approved by you";
    }
  }

  // -- deciding --------------------------------------------------------------------------
  batchable(view) {
    return !!view && view.risk?.level === "MEDIUM" && !view.step_up_required;
  }

  panelOf(id) {
    return this.cards.get(id)?.querySelector(".panel");
  }

  closePanel(id) {
    const panel = this.panelOf(id);
    if (panel) clear(panel);
  }

  startApprove(id) {
    const view = this.actions.get(id);
    if (!view || this.expired(view)) return;
    if (!view.step_up_required) {
      this.decide(id, "approve");
      return;
    }
    const panel = clear(this.panelOf(id));
    panel.append(
      stepUpPanel({
        actionId: id,
        verb: "approve",
        onToken: (token) => this.decide(id, "approve", { step_up_token: token }),
        onCancel: () => {
          this.closePanel(id);
          this.cards.get(id)?.querySelector("button.approve")?.focus();
        },
      }),
    );
  }

  startDeny(id) {
    const view = this.actions.get(id);
    if (!view || this.expired(view)) return;
    const panel = clear(this.panelOf(id));
    const inputId = `reason-${id}`;
    const input = h("input", { id: inputId, name: "reason", maxlength: "500", className: "reason", autocomplete: "off" });
    panel.append(
      h(
        "form",
        {
          className: "deny-form",
          onsubmit: (event) => {
            event.preventDefault();
            const reason = input.value.trim();
            this.decide(id, "deny", reason ? { reason } : {});
          },
        },
        h("label", { for: inputId }, "Reason for the agent (optional)"),
        h(
          "div",
          { className: "row" },
          input,
          h("button", { type: "submit", className: "deny confirm" }, "Deny"),
          h(
            "button",
            {
              type: "button",
              className: "secondary",
              onclick: () => {
                this.closePanel(id);
                this.cards.get(id)?.querySelector("button.deny")?.focus();
              },
            },
            "Cancel",
          ),
        ),
      ),
    );
    input.focus();
  }

  async decide(id, decision, extra = {}) {
    const card = this.cards.get(id);
    const buttons = card ? [...card.querySelectorAll("button")] : [];
    buttons.forEach((b) => (b.disabled = true));
    try {
      const view = await api("/api/actions/approve", {
        method: "POST",
        body: { action_id: id, decision, ...extra },
      });
      if (view.status === "pending") {
        // a quorum vote: recorded, others still to approve
        this.actions.set(id, view);
        this.refreshQuorum(view);
        this.closePanel(id);
        announce(`Your approval of ${view.tool} is recorded; waiting for the other approvers.`);
        buttons.forEach((b) => (b.disabled = false));
        this.markOwnVote(view);
        return view;
      }
      this.gone.add(id);
      this.drop(id);
      announce(`${VERBS[view.status] || view.status}: ${view.tool}`);
      this.render();
      return view;
    } catch (error) {
      buttons.forEach((b) => (b.disabled = false));
      if (error instanceof ApiError && error.status === 409) {
        announce(`That action was already decided: ${error.message}`, "error");
        this.gone.add(id);
        this.drop(id);
        this.render();
      } else {
        this.fail(id, error);
      }
      return null;
    }
  }

  fail(id, error) {
    const panel = this.panelOf(id);
    const note = h("p", { className: "error", role: "alert" }, `Could not decide: ${error.message}`);
    if (panel) panel.prepend(note);
    else announce(note.textContent, "error");
  }

  toggleSelected(id, on) {
    if (on && this.batchable(this.actions.get(id))) this.selected.add(id);
    else this.selected.delete(id);
    const box = this.cards.get(id)?.querySelector(".batch-select");
    if (box) box.checked = this.selected.has(id);
    this.render();
  }

  selectAllMedium() {
    for (const [id, view] of this.actions) if (this.batchable(view)) this.toggleSelected(id, true);
  }

  async approveBatch() {
    const ids = [...this.selected].filter((id) => this.batchable(this.actions.get(id)));
    if (ids.length === 0 || this.busy) return;
    this.busy = true;
    this.render();
    let done = 0;
    for (const id of ids) {
      const view = await this.decide(id, "approve");
      if (view) done += 1;
    }
    this.busy = false;
    this.selected.clear();
    announce(`Approved ${done} of ${ids.length} selected MEDIUM actions.`);
    this.render();
  }

  // -- time -------------------------------------------------------------------------------
  expired(view) {
    return view.expires_at && Date.parse(view.expires_at) <= Date.now();
  }

  updateCountdowns() {
    const now = Date.now();
    for (const [id, card] of this.cards) {
      const time = card.querySelector("time.countdown");
      const expires = Date.parse(time?.dataset.expires || "");
      if (!time || Number.isNaN(expires)) continue;
      const left = Math.max(0, Math.ceil((expires - now) / 1000));
      if (left > 0) {
        const m = Math.floor(left / 60);
        const s = String(left % 60).padStart(2, "0");
        time.textContent = `${m}:${s} left`;
        time.classList.toggle("soon", left <= 60);
        continue;
      }
      if (!card.classList.contains("expired")) {
        card.classList.add("expired");
        time.textContent = "Expired";
        card.querySelectorAll(".decide button, .decide input").forEach((b) => (b.disabled = true));
        this.closePanel(id);
        this.selected.delete(id);
        // the server's expiry event normally removes it; if that was missed, ask
        setTimeout(() => this.recheck(id), EXPIRY_GRACE_MS);
      }
    }
  }

  async recheck(id) {
    if (!this.actions.has(id)) return;
    try {
      const view = await api(`/api/actions/${encodeURIComponent(id)}`);
      if (view.status !== "pending") this.decided({ action_id: id, status: view.status });
    } catch {
      /* the next resync will settle it */
    }
  }

  // -- keyboard ----------------------------------------------------------------------------
  toggleHelp() {
    if (this.help.open) this.help.close();
    else this.help.showModal();
  }

  onKey(event) {
    const t = event.target;
    const typing = t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
    if (event.key === "Escape") {
      const card = t instanceof HTMLElement ? t.closest("article.card") : null;
      if (card) {
        this.closePanel(card.dataset.actionId);
        card.focus();
      }
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey || this.help.open) return;
    const cards = [...this.list.querySelectorAll("article.card")];
    const current = t instanceof HTMLElement ? t.closest("article.card") : null;
    const index = current ? cards.indexOf(current) : -1;
    const focusAt = (i) => cards[Math.max(0, Math.min(cards.length - 1, i))]?.focus();
    const id = current?.dataset.actionId;
    switch (event.key) {
      case "ArrowDown":
      case "ArrowUp":
        if (!current) return; // arrows scroll the page unless a card has the focus
      // falls through
      case "j":
      case "k":
        if (!cards.length) return;
        focusAt(event.key === "j" || event.key === "ArrowDown" ? index + 1 : index < 0 ? 0 : index - 1);
        break;
      case "a":
        if (!id) return;
        this.startApprove(id);
        break;
      case "d":
        if (!id) return;
        this.startDeny(id);
        break;
      case "x":
        if (!id || !this.batchable(this.actions.get(id))) return;
        this.toggleSelected(id, !this.selected.has(id));
        break;
      case "A":
        this.approveBatch();
        break;
      case "?":
        this.toggleHelp();
        break;
      default:
        return;
    }
    event.preventDefault();
  }
}
