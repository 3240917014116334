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
 * resume (sse.js); details of a new action come from GET /api/actions/{id}. Cloud mode
 * will listen to Firestore (onSnapshot on the user's actions, under firestore.rules)
 * behind the same interface; it is not wired yet and says so.
 */
import { api } from "./api.js";
import { session } from "./auth.js";
import { config } from "./config.js";
import { EventStream } from "./sse.js";

export function openLive(handlers) {
  if (config.mode === "cloud") {
    throw new Error("cloud mode (Firestore onSnapshot) is not available in this build yet");
  }
  return openLocal(handlers);
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
          const view = await api(`/api/actions/${encodeURIComponent(data.action_id)}`);
          (data.type === "action.voted" ? onVoted : onCreated)(view);
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
