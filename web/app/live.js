/**
 * The one live data source of the dashboard: what is pending for the signed-in user,
 * and every change to it, pushed. Pages talk only to this interface:
 *
 *   const live = openLive({ onCreated(view), onVoted(view), onDecided(event), onResync(), onState(s) })
 *
 * onVoted: another vote on a quorum action that is still pending (the view has who voted).
 *   live.close()
 *
 * Local mode (`vettra dev`): GET /api/events, server-sent events with Last-Event-ID
 * resume (sse.js); details of a new action come from GET /api/actions/{id}.
 *
 * Cloud mode: Firestore onSnapshot listeners on the pending actions firestore.rules let
 * this user read (cloud.js, pendingQueries), signed in to Firebase with the custom token.
 * A document entering a listener's results is a new pending action, one leaving them was
 * decided (or expired); either way the action's view comes from the API, as locally, so
 * the page shows what the server says. The first snapshot of each listener resyncs the
 * queue. Firestore's SDK reconnects by itself and replays what changed meanwhile.
 */
import { api } from "./api.js";
import { session } from "./auth.js";
import { config } from "./config.js";
import { EventStream } from "./sse.js";

export function openLive(handlers) {
  if (config.mode === "cloud") return openCloud(handlers);
  return openLocal(handlers);
}

async function view(actionId) {
  return api(`/api/actions/${encodeURIComponent(actionId)}`);
}

function openCloud({ onCreated, onVoted, onDecided, onResync, onState, onFatal }) {
  const stops = [];
  let closed = false;
  onState("connecting");
  import("./cloud.js")
    .then(({ onSnapshot, pendingQueries }) => {
      if (closed) return;
      const who = session();
      if (!who) return;
      for (const query of pendingQueries(who)) {
        let first = true;
        const stop = onSnapshot(
          query,
          (snapshot) => {
            onState("live");
            if (first) {
              first = false;
              onResync();
              return;
            }
            for (const change of snapshot.docChanges()) {
              const id = change.doc.id;
              if (change.type === "added") {
                view(id).then(onCreated, onResync);
              } else if (change.type === "modified") {
                view(id).then(onVoted, onResync); // a vote or a re-read of a pending action
              } else if (change.type === "removed") {
                view(id).then((v) => onDecided({ action_id: id, status: v.status }), onResync);
              }
            }
          },
          (error) => {
            // permission-denied or unauthenticated: the Firebase half of the session is gone
            if (error?.code === "permission-denied" || error?.code === "unauthenticated") {
              onFatal();
            } else {
              onState("stopped");
            }
          },
        );
        stops.push(stop);
      }
    })
    .catch(() => onState("stopped"));
  return {
    close: () => {
      closed = true;
      for (const stop of stops.splice(0)) stop();
    },
    lastEventId: null,
  };
}

function openLocal({ onCreated, onVoted, onDecided, onResync, onState, onFatal }) {
  const stream = new EventStream({
    url: "/api/events",
    token: () => session()?.token ?? null,
    onState,
    onFatal,
    onMessage: async (name, data) => {
      if (name === "open") {
        // first stream: catch up with a full list; a resumed one replays what it missed
        if (!data.resumed) onResync();
        return;
      }
      if (name === "reset") {
        onResync();
        return;
      }
      if (name !== "action") return;
      if ((data.type === "action.created" || data.type === "action.voted") && data.status === "pending") {
        try {
          const current = await view(data.action_id);
          (data.type === "action.voted" ? onVoted : onCreated)(current);
        } catch {
          onResync();
        }
      } else if (data.type === "action.decided") {
        onDecided(data);
      }
    },
  });
  stream.start();
  return {
    close: () => stream.stop(),
    get lastEventId() {
      return stream.lastEventId;
    },
  };
}
