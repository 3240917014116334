/**
 * The inline step-up (RFC 9470): a challenge from POST /api/approvals/stepup/trigger,
 * answered with a TOTP code or a passkey (navigator.credentials.get with the options
 * the trigger returned), verified by POST /api/approvals/stepup/verify for a
 * single-use step-up token bound to this action (or purpose).
 */
import { api, ApiError } from "./api.js";
import { h } from "./dom.js";
import { assert, passkeysAvailable } from "./webauthn.js";

let counter = 0;

/**
 * A panel that gets a step-up token and hands it to `onToken`.
 * @param {{actionId?: string, purpose?: string, verb: string,
 *          onToken: (token: string) => Promise<void>, onCancel: () => void}} o
 */
export function stepUpPanel({ actionId, purpose, verb, onToken, onCancel }) {
  const n = ++counter;
  const status = h("p", { className: "stepup-status", role: "status" }, "Preparing a step-up challenge…");
  const panel = h(
    "fieldset",
    { className: "stepup" },
    h("legend", {}, "Step-up required"),
    h("p", { className: "hint" }, `Prove it is you again to ${verb}.`),
    status,
  );
  const cancel = h("button", { type: "button", className: "secondary", onclick: onCancel }, "Cancel");

  const fail = (error) => {
    status.textContent =
      error instanceof ApiError && error.status === 409 && /enrol/i.test(error.message)
        ? "No step-up factor is enrolled yet."
        : /^step-up failed/i.test(error.message)
          ? `${error.message[0].toUpperCase()}${error.message.slice(1)}`
          : `Step-up failed: ${error.message}`;
    status.classList.add("error");
    if (/enrol/i.test(error.message)) {
      status.append(" ", h("a", { href: "#/factors" }, "Enrol a factor"));
    }
  };

  const finish = async (answer) => {
    status.classList.remove("error");
    status.textContent = "Verifying…";
    const grant = await api("/api/approvals/stepup/verify", { method: "POST", body: answer });
    status.textContent = "Verified.";
    await onToken(grant.step_up_token);
  };

  (async () => {
    let challenge;
    try {
      challenge = await api("/api/approvals/stepup/trigger", {
        method: "POST",
        body: actionId ? { action_id: actionId } : { purpose },
      });
    } catch (error) {
      fail(error);
      panel.append(h("div", { className: "row" }, cancel));
      return;
    }
    status.textContent = "";
    const row = h("div", { className: "row" });
    if (challenge.methods.includes("totp")) {
      const id = `totp-${n}`;
      const input = h("input", {
        id,
        name: "code",
        inputmode: "numeric",
        autocomplete: "one-time-code",
        pattern: "[0-9]{6}",
        maxlength: "6",
        required: true,
        className: "code",
      });
      const form = h(
        "form",
        {
          className: "totp",
          onsubmit: async (event) => {
            event.preventDefault();
            if (!/^[0-9]{6}$/.test(input.value)) {
              status.textContent = "Enter the 6 digits your authenticator app shows.";
              status.classList.add("error");
              input.focus();
              return;
            }
            try {
              await finish({ challenge_id: challenge.challenge_id, code: input.value });
            } catch (error) {
              fail(error);
              input.select();
            }
          },
        },
        h("label", { for: id }, "6-digit code from your authenticator app"),
        h("div", { className: "row" }, input, h("button", { type: "submit" }, `Verify code and ${verb}`)),
      );
      panel.append(form);
      queueMicrotask(() => input.focus());
    }
    if (challenge.methods.includes("webauthn") && challenge.webauthn && passkeysAvailable()) {
      row.append(
        h(
          "button",
          {
            type: "button",
            className: "passkey",
            onclick: async () => {
              try {
                status.textContent = "Waiting for your passkey…";
                const assertion = await assert(challenge.webauthn);
                await finish({ challenge_id: challenge.challenge_id, webauthn: assertion });
              } catch (error) {
                fail(error);
              }
            },
          },
          `Use a passkey to ${verb}`,
        ),
      );
    }
    row.append(cancel);
    panel.append(row);
  })();
  return panel;
}
