/**
 * The audit log: entries with their hash links, one action's trail, and Verify, which
 * checks the log in this browser rather than asking the server, with the backend's own
 * WASM module when it loads and passes its checks, else with WebCrypto (wasm.js; the
 * page says which). Admins verify the whole chain; an approver, who sees only their own
 * entries, verifies each one's hash and its inclusion proof against the signed
 * checkpoint. The checkpoint verified last in this browser is kept (localStorage), and
 * the next one must be consistent with it (RFC 9162 consistency proof). An export file
 * (`vettra audit export`) can be verified here too, and the page says where it breaks.
 */
import { api, ApiError } from "../api.js";
import { session } from "../auth.js";
import { clear, h } from "../dom.js";
import { Broken } from "../verify.js";
import { chooseVerifier } from "../wasm.js";

const SAVED_CHECKPOINT = "vettra.checkpoint";

/** The server's log is not an extension of the one this browser verified before. */
class Rewritten extends Error {}

const PAGE = 200;
const FETCH_PAGE = 1000;

function short(hash) {
  return hash ? `${hash.slice(0, 10)}…` : "—";
}

async function allEntries() {
  const out = [];
  let after = 0;
  for (;;) {
    const page = await api(`/api/audit/entries?after=${after}&limit=${FETCH_PAGE}`);
    out.push(...page.entries);
    if (!page.next_after) return out;
    after = page.next_after;
  }
}

async function trustedKeys() {
  const published = await api("/api/audit/public-key");
  return [published.verifier_key, ...(published.previous || [])];
}

async function proofOf(path) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await api(path);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 429 || attempt > 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000)); // the proof endpoints are rate-limited
    }
  }
}

export class AuditPage {
  mount(root) {
    this.result = h("div", { className: "verify-result", role: "status", "aria-live": "polite" });
    this.rows = h("tbody");
    this.more = h("button", { type: "button", className: "secondary", hidden: true, onclick: () => this.load(true) }, "Older entries");
    this.trail = h("div", { className: "trail" });
    const fileId = "export-file";
    this.el = h(
      "section",
      { className: "page audit", "aria-labelledby": "audit-title" },
      h("h1", { id: "audit-title" }, "Audit log"),
      h(
        "div",
        { className: "panel-box" },
        h("h2", {}, "Verify"),
        h(
          "p",
          { className: "hint" },
          session()?.role === "admin"
            ? "Checks the whole chain here in your browser: every hash, every link, and the signed checkpoint's Merkle root."
            : "Checks your entries here in your browser: each hash, and its inclusion proof against the signed checkpoint.",
        ),
        h("div", { className: "row" }, h("button", { type: "button", id: "verify-log", onclick: () => this.verifyServer() }, "Verify the log")),
        (this.engineLine = h("p", { className: "hint", id: "verify-engine" }, "Loading the WASM verifier…")),
        h(
          "div",
          { className: "row" },
          h("label", { for: fileId }, "Or verify an export file (vettra audit export)"),
          h("input", { type: "file", id: fileId, accept: ".jsonl,.json,.txt,application/json", onchange: (e) => this.verifyFile(e.target.files[0]) }),
        ),
        this.result,
      ),
      this.trail,
      h(
        "div",
        { className: "table-wrap" },
        h(
          "table",
          { className: "entries" },
          h("caption", { className: "hint" }, "Newest first. Each entry's previous hash is the hash of the entry before it."),
          h("thead", {}, h("tr", {}, ...["Seq", "Time", "Type", "Action", "Actor", "Hash", "Previous"].map((t) => h("th", { scope: "col" }, t)))),
          this.rows,
        ),
      ),
      this.more,
    );
    root.append(this.el);
    this.entries = [];
    this.load(false);
    chooseVerifier().then((engine) => this.showEngine(engine));
  }

  showEngine(engine) {
    this.engineLine.dataset.engine = engine.name;
    this.engineLine.className = engine.note ? "verifier-fallback" : "hint";
    this.engineLine.textContent = engine.note ? `Verifier: WebCrypto (fallback). ${engine.note}` : `Verifier: ${engine.label}.`;
  }

  unmount() {
    this.el?.remove();
  }

  async load(older) {
    try {
      if (!older) this.entries = await allEntries();
      this.shown = older ? this.shown + PAGE : PAGE;
      clear(this.rows);
      const newest = [...this.entries].reverse().slice(0, this.shown);
      for (const e of newest) {
        this.rows.append(
          h(
            "tr",
            { dataset: { seq: String(e.seq) } },
            h("td", {}, String(e.seq)),
            h("td", {}, h("time", { dateTime: e.at }, new Date(e.at).toLocaleString())),
            h("td", {}, e.type),
            h(
              "td",
              {},
              e.action_id
                ? h("button", { type: "button", className: "link", onclick: () => this.showTrail(e.action_id) }, short(e.action_id))
                : "—",
            ),
            h("td", {}, e.actor),
            h("td", { className: "hash", title: e.hash }, short(e.hash)),
            h("td", { className: "hash", title: e.prev_hash }, short(e.prev_hash)),
          ),
        );
      }
      this.more.hidden = this.entries.length <= this.shown;
      if (this.el) this.el.dataset.loaded = "true";
    } catch (error) {
      this.report(false, `Could not load the log: ${error.message}`);
    }
  }

  async showTrail(actionId) {
    clear(this.trail);
    try {
      const { entries } = await api(`/api/audit/action/${encodeURIComponent(actionId)}`);
      this.trail.append(
        h(
          "div",
          { className: "panel-box" },
          h("h2", { tabindex: "-1", id: "trail-title" }, `Trail of ${actionId}`),
          h(
            "ol",
            {},
            ...entries.map((e) => h("li", {}, `#${e.seq} ${e.type} by ${e.actor} at ${new Date(e.at).toLocaleString()}`, e.data?.reason ? ` — ${e.data.reason}` : "")),
          ),
          h("button", { type: "button", className: "secondary", onclick: () => clear(this.trail) }, "Close"),
        ),
      );
      this.trail.querySelector("#trail-title").focus();
    } catch (error) {
      this.trail.append(h("p", { className: "error" }, error.message));
    }
  }

  report(ok, text, broken, engine) {
    clear(this.result).append(
      h("p", { className: ok ? "ok" : "bad", id: "verify-outcome", dataset: engine ? { engine: engine.name } : {} }, ok ? "✓ " : "✗ ", text, engine ? ` (checked by ${engine.label})` : ""),
      broken ? h("p", { className: "bad", id: "verify-where" }, `Breaks at entry ${broken.seq}: ${broken.reason}`) : null,
    );
    for (const tr of this.rows.querySelectorAll("tr.broken")) tr.classList.remove("broken");
    if (broken) this.rows.querySelector(`tr[data-seq='${broken.seq}']`)?.classList.add("broken");
  }

  /** Is `cp` an extension of the checkpoint this browser verified last? A sentence, or a Broken. */
  async consistentWithSaved(engine, cp, origin) {
    let saved;
    try {
      saved = JSON.parse(localStorage.getItem(SAVED_CHECKPOINT) || "null");
    } catch {
      saved = null;
    }
    const keep = () => localStorage.setItem(SAVED_CHECKPOINT, JSON.stringify({ origin, size: cp.size, root: cp.root }));
    if (!saved || saved.origin !== origin || !Number.isInteger(saved.size) || saved.size < 1 || cp.size < 1) {
      keep();
      return "";
    }
    if (saved.size > cp.size) {
      throw new Broken(cp.size + 1, `rollback: this browser verified a checkpoint of ${saved.size} entries before; the server's covers ${cp.size}`);
    }
    if (!engine.consistency) return `; consistency with the checkpoint you verified before (${saved.size} entries) is not checked without the WASM verifier`;
    let consistent = saved.root === cp.root;
    if (saved.size < cp.size) {
      const proof = await proofOf(`/api/audit/proof/consistency?from=${saved.size}&to=${cp.size}`);
      consistent = await engine.consistency(saved.size, cp.size, saved.root, cp.root, proof.proof);
    }
    if (!consistent) {
      throw new Rewritten(`The log was rewritten: the checkpoint signed for ${cp.size} entries does not extend the one of ${saved.size} entries this browser verified before (the consistency proof fails).`);
    }
    keep();
    return `; consistent with the checkpoint you verified before (${saved.size} entries)`;
  }

  async verifyServer() {
    this.report(true, "Verifying…");
    const engine = await chooseVerifier();
    this.showEngine(engine);
    try {
      const keys = await trustedKeys();
      const entries = await allEntries();
      this.entries = entries;
      const checkpoint = await api("/api/audit/checkpoint");
      let cp;
      try {
        cp = await engine.checkpoint(checkpoint.note, keys);
      } catch (error) {
        this.report(false, "The signed checkpoint does not verify.", new Broken(checkpoint.size, error.message), engine);
        return;
      }
      const history = await this.consistentWithSaved(engine, cp, keys[0].split("+")[0]);
      if (session()?.role === "admin") {
        const done = await engine.chain(entries, [cp]);
        const uncovered = done.length - done.covered;
        this.report(true, `Valid: ${done.length} entries, hashes and links intact; the checkpoint signed for ${cp.size} entries matches their Merkle root${uncovered ? `; ${uncovered} newer entries await the next checkpoint` : ""}${history}.`, null, engine);
        return;
      }
      let proved = 0;
      let later = 0;
      for (const e of entries) {
        if ((await engine.entryHash(e)) !== e.hash) throw new Broken(e.seq, "hash mismatch: the entry is not what was hashed");
        if (e.seq > cp.size) {
          later += 1;
          continue;
        }
        const proof = await proofOf(`/api/audit/proof/inclusion?seq=${e.seq}&tree_size=${cp.size}`);
        if (proof.entry_hash !== e.hash || !(await engine.inclusion(e.seq - 1, cp.size, e.hash, proof.proof, cp.root))) {
          throw new Broken(e.seq, "inclusion proof does not lead to the signed root");
        }
        proved += 1;
      }
      this.report(true, `Valid: ${entries.length} of your entries hash correctly; ${proved} are proved included in the log the checkpoint signed (${cp.size} entries)${later ? `; ${later} newer ones await the next checkpoint` : ""}${history}.`, null, engine);
    } catch (error) {
      if (error instanceof Broken) this.report(false, "The log does not verify.", error, engine);
      else if (error instanceof Rewritten) this.report(false, error.message, null, engine);
      else this.report(false, `Could not verify: ${error.message}`, null, engine);
    }
  }

  async verifyFile(file) {
    if (!file) return;
    this.report(true, `Verifying ${file.name}…`);
    const engine = await chooseVerifier();
    this.showEngine(engine);
    try {
      const keys = await trustedKeys();
      const done = await engine.exportFile(await file.text(), keys);
      this.report(true, `${file.name} is valid: ${done.length} entries; ${done.checkpoints} signed checkpoint(s) match; ${done.length - done.covered} trailing entries under no checkpoint.`, null, engine);
    } catch (error) {
      if (error instanceof Broken) this.report(false, `${file.name} does not verify.`, error, engine);
      else this.report(false, `${file.name}: ${error.message}`, null, engine);
    }
  }
}
