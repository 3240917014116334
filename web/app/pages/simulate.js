/**
 * Threat simulation: the write-up's five scenarios and a prompt injection, each sent
 * through Vettra for real by the simulation agent acting for you. The page shows what
 * each should give and what the server did; held ones appear in your queue at once.
 */
import { api } from "../api.js";
import { announce, clear, h } from "../dom.js";

function outcomeText(o) {
  const words = { allowed: "Allowed at once", pending: "Held for your decision", denied: "Denied by policy" };
  return `${words[o.status] || o.status} · ${o.level}${o.step_up_required ? " · step-up required" : ""}`;
}

export class SimulatePage {
  mount(root) {
    this.list = h("ol", { className: "cards scenarios", "aria-label": "Scenarios" });
    this.el = h(
      "section",
      { className: "page simulate", "aria-labelledby": "simulate-title" },
      h("h1", { id: "simulate-title" }, "Threat simulation"),
      h(
        "p",
        { className: "hint" },
        "Each scenario is a real request from the agent “vettra-threat-simulation” acting for you: held ones land in your queue to decide; nothing is executed and no credential is ever released to it.",
      ),
      h("div", { className: "toolbar" }, h("button", { type: "button", id: "run-all", onclick: () => this.runAll() }, "Run all scenarios")),
      this.list,
    );
    root.append(this.el);
    this.load();
  }

  unmount() {
    this.el?.remove();
  }

  async load() {
    const { scenarios } = await api("/api/simulations");
    this.items = new Map();
    clear(this.list);
    for (const s of scenarios) {
      const result = h("p", { className: "sim-result", role: "status" });
      const item = h(
        "li",
        {},
        h(
          "article",
          { className: "card sim", dataset: { scenario: s.scenario }, "aria-labelledby": `sim-${s.scenario}` },
          h("h2", { id: `sim-${s.scenario}` }, s.title),
          h("p", {}, s.threat),
          h("dl", { className: "facts" }, h("dt", {}, "Tool"), h("dd", {}, h("code", {}, s.tool)), h("dt", {}, "Expected"), h("dd", { className: "expected" }, outcomeText(s.expected))),
          result,
          h("div", { className: "decide" }, h("button", { type: "button", className: "run", onclick: () => this.run(s.scenario) }, `Run “${s.title}”`)),
        ),
      );
      this.items.set(s.scenario, result);
      this.list.append(item);
    }
    this.el.dataset.loaded = "true";
  }

  async run(name) {
    const result = this.items.get(name);
    result.textContent = "Running…";
    try {
      const run = await api("/api/simulations", { method: "POST", body: { scenario: name } });
      clear(result).append(
        h("span", { className: run.as_expected ? "ok" : "bad" }, run.as_expected ? "✓ As expected: " : "✗ Unexpected: "),
        outcomeText(run.outcome),
        run.outcome.status === "pending" ? [" — ", h("a", { href: "#/queue" }, "decide it in the queue")] : "",
        run.action.reason ? h("span", { className: "hint" }, ` (${run.action.reason})`) : "",
      );
      result.dataset.outcome = run.outcome.status;
      return run;
    } catch (error) {
      result.textContent = `Failed: ${error.message}`;
      return null;
    }
  }

  async runAll() {
    let ok = 0;
    for (const name of this.items.keys()) if ((await this.run(name))?.as_expected) ok += 1;
    announce(`${ok} of ${this.items.size} scenarios behaved as expected.`);
  }
}
