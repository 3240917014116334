/**
 * Step-up factors: enrol an authenticator app (TOTP, with its QR code) or a passkey,
 * list them with when each was last used, remove one. Adding a factor when one exists,
 * and removing any, needs a step-up first (a stolen session alone can do neither).
 */
import qrcode from "../../vendor/qrcode-generator.mjs";
import { api } from "../api.js";
import { announce, clear, h, svg } from "../dom.js";
import { stepUpPanel } from "../stepup.js";
import { create, passkeysAvailable } from "../webauthn.js";

const ENROLL_PURPOSE = "stepup.enroll";

function when(value) {
  return value ? h("time", { dateTime: value }, new Date(value).toLocaleString()) : "never";
}

/** The otpauth:// URI as an SVG QR code, drawn with DOM nodes (no markup strings). */
export function qrSvg(text, label) {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  let d = "";
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) if (qr.isDark(r, c)) d += `M${c + 4},${r + 4}h1v1h-1z`;
  return svg(
    "svg",
    { viewBox: `0 0 ${n + 8} ${n + 8}`, role: "img", "aria-label": label, "shape-rendering": "crispEdges" },
    svg("rect", { width: String(n + 8), height: String(n + 8), fill: "#ffffff" }),
    svg("path", { d, fill: "#000000" }),
  );
}

export class FactorsPage {
  mount(root) {
    this.list = h("div", { className: "factor-list" });
    this.work = h("div", { className: "factor-work", "aria-live": "polite" });
    this.el = h(
      "section",
      { className: "page factors", "aria-labelledby": "factors-title" },
      h("h1", { id: "factors-title" }, "Step-up factors"),
      h("p", { className: "hint" }, "A step-up proves it is you again before a HIGH action is approved or a session is pre-authorised."),
      h("div", { className: "panel-box" }, h("h2", {}, "Your factors"), this.list),
      h(
        "div",
        { className: "panel-box" },
        h("h2", {}, "Add a factor"),
        h(
          "div",
          { className: "row" },
          h("button", { type: "button", id: "add-totp", onclick: () => this.add("totp") }, "Add an authenticator app"),
          passkeysAvailable()
            ? h("button", { type: "button", id: "add-passkey", onclick: () => this.add("webauthn") }, "Add a passkey")
            : h("p", { className: "hint" }, "This browser has no passkey support."),
        ),
        this.work,
      ),
    );
    root.append(this.el);
    this.refresh();
  }

  unmount() {
    this.el?.remove();
  }

  async refresh() {
    const { factors } = await api("/api/approvals/stepup/factors");
    this.factors = factors;
    clear(this.list);
    if (this.el) this.el.dataset.loaded = "true";
    if (!factors.length) {
      this.list.append(h("p", { className: "empty" }, "None yet: add one below, or HIGH actions cannot be approved."));
      return;
    }
    const rows = factors.map((f) =>
      h(
        "tr",
        { dataset: { factor: f.factor_id } },
        h("td", {}, f.label || f.method),
        h("td", {}, when(f.created_at)),
        h("td", {}, when(f.last_used_at)),
        h("td", {}, h("button", { type: "button", className: "secondary remove", onclick: (e) => this.remove(f, e.target) }, `Remove ${f.label || f.method}`)),
      ),
    );
    this.list.append(
      h(
        "div",
        { className: "table-wrap" },
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ...["Factor", "Added", "Last used", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, ...rows),
        ),
      ),
    );
  }

  /** Run `then(token)` after a step-up for `purpose`, shown in `where`. */
  stepUp(where, purpose, verb, then) {
    clear(where).append(
      stepUpPanel({
        purpose,
        verb,
        onToken: async (token) => {
          clear(where);
          await then(token);
        },
        onCancel: () => clear(where),
      }),
    );
  }

  add(method) {
    if (this.factors?.length) {
      this.stepUp(this.work, ENROLL_PURPOSE, "add a factor", (token) => this.enrol(method, token));
    } else {
      this.enrol(method, undefined);
    }
  }

  async enrol(method, token) {
    try {
      const started = await api("/api/approvals/stepup/enroll", {
        method: "POST",
        body: token ? { method, step_up_token: token } : { method },
      });
      if (method === "totp") this.confirmTotp(started);
      else await this.finishPasskey(started);
    } catch (error) {
      clear(this.work).append(h("p", { className: "error", role: "alert" }, `Could not add it: ${error.message}`));
    }
  }

  confirmTotp(started) {
    const input = h("input", { id: "totp-confirm", inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]{6}", maxlength: "6", required: true, className: "code" });
    const status = h("p", { role: "status" });
    clear(this.work).append(
      h("h3", {}, "Scan this with your authenticator app"),
      h("div", { className: "qr" }, qrSvg(started.otpauth_uri, "QR code of the new authenticator secret")),
      h("p", {}, "Or type the secret: ", h("code", { id: "totp-secret" }, started.secret)),
      h(
        "form",
        {
          onsubmit: async (event) => {
            event.preventDefault();
            try {
              await api("/api/approvals/stepup/enroll", {
                method: "POST",
                body: { method: "totp", enrollment_id: started.enrollment_id, code: input.value },
              });
              clear(this.work);
              announce("Authenticator app added.");
              await this.refresh();
            } catch (error) {
              status.textContent = error.message;
              status.className = "error";
            }
          },
        },
        h("label", { for: "totp-confirm" }, "The 6-digit code it shows now"),
        h("div", { className: "row" }, input, h("button", { type: "submit" }, "Confirm")),
        status,
      ),
    );
    input.focus();
  }

  async finishPasskey(started) {
    clear(this.work).append(h("p", { role: "status" }, "Follow your browser's passkey prompt…"));
    const credential = await create(started.options);
    await api("/api/approvals/stepup/enroll", {
      method: "POST",
      body: { method: "webauthn", enrollment_id: started.enrollment_id, credential },
    });
    clear(this.work);
    announce("Passkey added.");
    await this.refresh();
  }

  remove(factor, button) {
    const row = button.closest("tr");
    const where = h("td", { colspan: "4" });
    const panelRow = h("tr", { className: "remove-row" }, where);
    row.after(panelRow);
    this.stepUp(where, factor.removal_purpose, `remove this ${factor.label || factor.method}`, async (token) => {
      try {
        await api("/api/approvals/stepup/factors/remove", {
          method: "POST",
          body: { factor_id: factor.factor_id, step_up_token: token },
        });
        announce(`${factor.label || factor.method} removed.`);
      } catch (error) {
        announce(`Could not remove it: ${error.message}`, "error");
      }
      panelRow.remove();
      await this.refresh();
    });
  }
}
