/**
 * Server-sent events over fetch, for GET /api/events (docs/events.md). EventSource
 * cannot send an Authorization header, so the stream is read with fetch and parsed by
 * eventsource-parser (WHATWG HTML §9.2). What EventSource would do is kept: the last
 * id seen (an id-only block included: the server opens each stream with one) is sent
 * back as Last-Event-ID on every reconnect, so the server replays what was missed, and
 * the server's `retry` sets the reconnect delay.
 */
import { createParser } from "../vendor/eventsource-parser/index.js";

const FIRST_RETRY_MS = 250; // the first reconnect after a drop is quick ...
const MAX_RETRY_MS = 30000; // ... later ones back off up to this

export class EventStream {
  /**
   * @param {object} o
   * @param {string} o.url
   * @param {() => string|null} o.token  the bearer token at connect time
   * @param {(name: string, data: object, id: string|undefined) => void} o.onMessage
   * @param {(state: string) => void} o.onState  connecting | live | reconnecting | stopped
   * @param {(error: Error) => void} [o.onFatal]  401/403: the stream will not come back
   */
  constructor({ url, token, onMessage, onState, onFatal }) {
    Object.assign(this, { url, token, onMessage, onState, onFatal });
    this.lastEventId = null;
    this.retryMs = 3000;
    this.failures = 0;
    this.controller = null;
    this.stopped = false;
    this.connects = 0;
  }

  start() {
    this.stopped = false;
    this.loop();
    return this;
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
    this.onState("stopped");
  }

  async loop() {
    while (!this.stopped) {
      const started = Date.now();
      try {
        await this.connect();
      } catch (error) {
        if (this.stopped || error.fatal) {
          if (error.fatal) this.onFatal?.(error);
          return;
        }
        if (error.retryAfterMs) await sleep(error.retryAfterMs);
      }
      if (this.stopped) return;
      // a stream that stayed up a while resets the back-off
      if (Date.now() - started > 10000) this.failures = 0;
      this.onState("reconnecting");
      const delay = this.failures === 0 ? FIRST_RETRY_MS : Math.min(this.retryMs * 2 ** (this.failures - 1), MAX_RETRY_MS);
      this.failures += 1;
      await sleep(delay);
    }
  }

  async connect() {
    this.controller = new AbortController();
    this.onState(this.connects === 0 ? "connecting" : "reconnecting");
    this.connects += 1;
    const headers = { Accept: "text/event-stream" };
    const bearer = this.token();
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    if (this.lastEventId !== null) headers["Last-Event-ID"] = this.lastEventId;
    const response = await fetch(this.url, {
      headers,
      signal: this.controller.signal,
      cache: "no-store",
      credentials: "omit",
    });
    if (response.status === 401 || response.status === 403) {
      const error = new Error(`the event stream was refused (HTTP ${response.status})`);
      error.fatal = true;
      throw error;
    }
    if (!response.ok || !response.body) {
      const error = new Error(`the event stream answered HTTP ${response.status}`);
      const retry = Number(response.headers.get("retry-after"));
      if (retry > 0) error.retryAfterMs = retry * 1000;
      throw error;
    }
    let opened = false;
    const parser = createParser({
      onId: (id) => {
        this.lastEventId = id;
      },
      onRetry: (ms) => {
        this.retryMs = ms;
      },
      onEvent: ({ event, data, id }) => {
        let parsed;
        try {
          parsed = JSON.parse(data);
        } catch {
          return; // not ours: every data line the server writes is JSON
        }
        this.onMessage(event || "message", parsed, id);
      },
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        parser.feed(value);
        if (!opened) {
          opened = true;
          this.onState("live");
          this.onMessage("open", { resumed: this.connects > 1 }, undefined);
        }
      }
    } finally {
      reader.releaseLock();
    }
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
