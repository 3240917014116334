/**
 * The dashboard's shell: sign-in, navigation (hash routes: #/queue, #/overview, #/audit,
 * #/sessions, #/factors, #/connections, #/simulate), the live source, and the pages.
 */
import { api } from "./api.js";
import { redeem, session, signOut, takeCodeFromUrl, forget } from "./auth.js";
import { config } from "./config.js";
import { announce, clear, h } from "./dom.js";
import { openLive } from "./live.js";
import { QueuePage } from "./pages/queue.js";
import { OverviewPage } from "./pages/overview.js";
import { AuditPage } from "./pages/audit.js";
import { SessionsPage } from "./pages/sessions.js";
import { FactorsPage } from "./pages/factors.js";
import { ConnectionsPage } from "./pages/connections.js";
import { SimulatePage } from "./pages/simulate.js";

const ROUTES = [
  ["queue", "Queue"],
  ["overview", "Overview"],
  ["audit", "Audit log"],
  ["sessions", "Sessions"],
  ["factors", "Step-up factors"],
  ["connections", "Connected accounts"],
  ["simulate", "Threat simulation"],
];
const STATES = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  stopped: "Offline",
};

const app = {
  live: null,
  queue: null,
  page: null,
  pendingBadge: null,
  liveStatus: null,
};

function main() {
  return document.getElementById("main");
}

function showSignedOut(message) {
  app.live?.close();
  app.live = null;
  document.getElementById("account")?.replaceChildren();
  document.getElementById("nav")?.replaceChildren();
  const root = clear(main());
  root.append(
    h(
      "section",
      { className: "page signin", "aria-labelledby": "signin-title" },
      h("h1", { id: "signin-title" }, "Sign in to Vettra"),
      message ? h("p", { className: "error", role: "alert" }, message) : null,
      ...(config.mode === "cloud" ? cloudSignIn() : localSignIn()),
    ),
  );
  document.title = "Sign in · Vettra";
}

function localSignIn() {
  return [
    h("p", {}, "Open the one-time sign-in link that the server prints: ", h("code", {}, "vettra dev"), " prints one when it starts, and"),
    h("pre", {}, h("code", {}, "vettra link --home DIR --sub YOUR_USER")),
    h("p", {}, "prints another. Each link works once, for ten minutes, in one tab."),
  ];
}

function cloudSignIn() {
  return [
    h("p", {}, "Sign in with your organisation's account (Auth0)."),
    h(
      "button",
      {
        type: "button",
        id: "sign-in",
        onclick: async (event) => {
          event.currentTarget.disabled = true;
          const { beginSignIn } = await import("./cloud.js");
          await beginSignIn();
        },
      },
      "Sign in",
    ),
  ];
}

/** Cloud mode: finish Auth0's redirect back, or check that Firebase still knows the tab. */
async function cloudStart() {
  const cloud = await import("./cloud.js");
  if (cloud.isCallback()) {
    await cloud.completeSignIn();
  } else if (session() && !(await cloud.firebaseUser())) {
    forget(); // the Firebase half is gone (another tab's sign-out, an expiry): sign in again
  }
}

function shell(who) {
  const nav = document.getElementById("nav");
  nav.replaceChildren(
    h(
      "ul",
      {},
      ...ROUTES.map(([route, label]) =>
        h(
          "li",
          {},
          h(
            "a",
            { href: `#/${route}`, dataset: { route } },
            label,
            route === "queue" ? h("span", { className: "pending-badge", id: "pending-badge", "aria-label": "pending" }) : null,
          ),
        ),
      ),
    ),
  );
  app.pendingBadge = document.getElementById("pending-badge");
  app.liveStatus = h("span", { className: "live-status", id: "live-status", role: "status" }, STATES.connecting);
  document.getElementById("account").replaceChildren(
    app.liveStatus,
    h("span", { className: "who" }, `${who.sub} (${who.role})`),
    h(
      "button",
      {
        type: "button",
        className: "secondary",
        id: "sign-out",
        onclick: async () => {
          await signOut();
          showSignedOut("You are signed out.");
        },
      },
      "Sign out",
    ),
  );
}

function setCount(n) {
  if (!app.pendingBadge) return;
  app.pendingBadge.textContent = n ? String(n) : "";
  app.pendingBadge.hidden = !n;
}

function currentRoute() {
  const match = /^#\/([a-z]+)/.exec(window.location.hash);
  const route = match ? match[1] : "queue";
  return ROUTES.some(([r]) => r === route) ? route : "queue";
}

function makePage(route) {
  switch (route) {
    case "overview":
      return new OverviewPage({ queue: app.queue });
    case "audit":
      return new AuditPage();
    case "sessions":
      return new SessionsPage();
    case "factors":
      return new FactorsPage();
    case "connections":
      return new ConnectionsPage();
    case "simulate":
      return new SimulatePage();
    default:
      return app.queue;
  }
}

function route({ focus = true } = {}) {
  if (!session()) return;
  const name = currentRoute();
  app.page?.unmount();
  const root = clear(main());
  app.page = makePage(name);
  app.page.mount(root);
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.route === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const label = ROUTES.find(([r]) => r === name)[1];
  document.title = `${label} · Vettra`;
  if (focus) root.querySelector("h1")?.setAttribute("tabindex", "-1");
  if (focus) root.querySelector("h1")?.focus();
}

async function resync() {
  try {
    const { actions } = await api("/api/actions/pending");
    app.queue.replaceAll(actions);
  } catch (error) {
    announce(`Could not load the queue: ${error.message}`, "error");
  }
}

function startLive() {
  app.live = openLive({
    onCreated: (view) => app.queue.added(view),
    onVoted: (view) => app.queue.added(view), // the card's votes change in place
    onDecided: (event) => app.queue.decided(event),
    onResync: resync,
    onState: (state) => {
      if (!app.liveStatus) return;
      app.liveStatus.textContent = STATES[state] || state;
      app.liveStatus.dataset.state = state;
    },
    onFatal: () => {
      forget();
      showSignedOut("Your session has ended; sign in again.");
    },
  });
}

async function start() {
  document.querySelector(".skip")?.addEventListener("click", (event) => {
    event.preventDefault();
    main().focus();
  });
  try {
    if (config.mode === "cloud") {
      await cloudStart();
    } else {
      const code = takeCodeFromUrl();
      if (code) await redeem(code);
    }
  } catch (error) {
    showSignedOut(error.message);
    return;
  }
  const who = session();
  if (!who) {
    showSignedOut();
    return;
  }
  window.addEventListener("vettra:signed-out", (event) => {
    forget();
    showSignedOut(`Your session has ended (${event.detail}); sign in again.`);
  });
  shell(who);
  app.queue = new QueuePage({ onCount: setCount });
  window.addEventListener("hashchange", () => route());
  route({ focus: false });
  startLive();
}

start();
