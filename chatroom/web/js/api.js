// Talking to the server: GraphQL over HTTP (fetch) and the room's live feed over a websocket
// (graphql-transport-ws, through the vendored graphql-ws client).
//
// Every document the page sends is a file in chatroom/web/operations/<Name>.graphql (one
// operation per file, validated against schema.graphql by tests/web/test_operations.py), with
// the shared fragments it spreads (`...TaskFields`: operations/fragments/TaskFields.graphql)
// appended. The page fetches the files once and sends that text, never a query built here: the
// server composes the same text from the same files (trusted_documents.document_text) and knows
// each document by its sha256 (trusted documents, SPEC §13).

const TOKEN_KEY = "chatroom.token";
const USER_KEY = "chatroom.user";

export const GRAPHQL_PATH = "/graphql";
const OPERATIONS_PATH = "/static/operations/";
const OPERATION_NAME = /^[A-Z][A-Za-z0-9]*$/;
// A named fragment spread; an inline fragment (`... on Task`) starts with a lower-case keyword.
const FRAGMENT_SPREAD = /\.\.\.\s*([A-Z][A-Za-z0-9]*)/g;

/** The guest token, kept in localStorage (GraphiQL at /graphql reads it too). */
export const auth = {
  get token() {
    try {
      return localStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  get user() {
    try {
      return JSON.parse(localStorage.getItem(USER_KEY) || "null");
    } catch {
      return null;
    }
  },
  /** "guest" or "account" when this page signed in; null when the token came from elsewhere. */
  get kind() {
    const user = this.user;
    return user && user.kind ? user.kind : null;
  },
  set(token, user) {
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(USER_KEY, JSON.stringify(user || null));
    window.dispatchEvent(new CustomEvent("auth-changed"));
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
    window.dispatchEvent(new CustomEvent("auth-changed"));
  },
};

/** A GraphQL error with its extensions.code (UNAUTHENTICATED, NOT_FOUND, ...). */
export class ApiError extends Error {
  constructor(message, code = null, errors = []) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.errors = errors;
  }
}

/** The server could not be reached (or answered something that is not GraphQL). */
export class NetworkError extends Error {
  constructor(message) {
    super(message);
    this.name = "NetworkError";
  }
}

export function errorText(err) {
  if (err instanceof ApiError || err instanceof NetworkError) return err.message;
  return "Something went wrong: " + (err && err.message ? err.message : String(err));
}

const files = new Map(); // path -> Promise of the file's text
const documents = new Map(); // operation name -> Promise of the document's text

/** A file under /static/operations/, fetched once per page load. */
function operationFile(path) {
  let text = files.get(path);
  if (!text) {
    text = fetch(OPERATIONS_PATH + path, { credentials: "omit" }).then(
      async (response) => {
        if (!response.ok) throw new Error(`The page is missing operations/${path}.`);
        return response.text();
      },
      () => {
        throw new NetworkError("Cannot reach the server. Check your connection and try again.");
      },
    );
    files.set(path, text);
    text.catch(() => files.delete(path)); // try again next time
  }
  return text;
}

function spreads(text) {
  return [...text.matchAll(FRAGMENT_SPREAD)].map((m) => m[1]);
}

/** The file's text, then every fragment it spreads (and those the fragments spread), in name
 * order, one newline between: exactly what trusted_documents.document_text composes. */
async function compose(name) {
  const text = await operationFile(name + ".graphql");
  const found = new Map(); // fragment name -> text
  let pending = spreads(text);
  while (pending.length) {
    const wanted = [...new Set(pending)].filter((f) => !found.has(f));
    const texts = await Promise.all(wanted.map((f) => operationFile(`fragments/${f}.graphql`)));
    pending = [];
    wanted.forEach((f, i) => {
      found.set(f, texts[i]);
      pending.push(...spreads(texts[i]));
    });
  }
  const names = [...found.keys()].sort();
  return [text, ...names.map((f) => found.get(f))].join("\n");
}

/** The text of the operation `name`, composed once per page load. */
export function operation(name) {
  if (!OPERATION_NAME.test(name)) {
    // A query string instead of a name is a bug: documents live in files only.
    throw new Error(`Not an operation name: ${String(name).slice(0, 40)}`);
  }
  let text = documents.get(name);
  if (!text) {
    text = compose(name);
    documents.set(name, text);
    text.catch(() => documents.delete(name)); // try again next time
  }
  return text;
}

/** Run the operation `name` (a file in operations/); returns `data` or throws ApiError /
 * NetworkError. */
export async function gql(name, variables = {}, { token = auth.token } = {}) {
  const query = await operation(name);
  const headers = { "content-type": "application/json", accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(GRAPHQL_PATH, {
      method: "POST",
      headers,
      body: JSON.stringify({ query, operationName: name, variables }),
      credentials: "omit",
    });
  } catch {
    throw new NetworkError("Cannot reach the server. Check your connection and try again.");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new NetworkError(`The server answered HTTP ${response.status}. Try again in a moment.`);
  }
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    const code = (first.extensions && first.extensions.code) || null;
    if (code === "UNAUTHENTICATED" && token && token === auth.token) {
      auth.clear(); // the token was revoked or expired: back to sign-in
    }
    throw new ApiError(first.message || "Request failed", code, body.errors);
  }
  return body.data;
}

/** The signed-in user ({ id, displayName, kind }), asking the server when the token came
 * without one (set by GraphiQL or a test). */
export async function currentUser() {
  const user = auth.user;
  if (user && user.id) return user;
  const token = auth.token;
  const me = (await gql("Me")).me;
  if (auth.token === token) auth.set(token, { ...me, kind: user ? user.kind : null });
  return me;
}

/** A random idempotency key: a retried request is applied once. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Follow a room's events, resuming from the last seq seen after every drop.
 *
 * The graphql-ws client speaks the protocol; this wrapper owns the reconnect loop so that each
 * new subscription carries `afterSeq` = the last seq handled (the server replays what was
 * missed), with exponential backoff and jitter. Events at or below the cursor are dropped, so a
 * replay never shows anything twice.
 *
 *   const feed = new RoomFeed({ chatroomId, afterSeq, query, onEvent, onState, onFatal });
 *   feed.start(); ... feed.stop();
 *
 * `query` is the document's text (from `await operation("RoomEvents")`), loaded before the
 * feed starts so that reconnecting never needs the network for anything but the socket.
 *
 * onState(state, detail): "connecting" | "live" | "reconnecting" (detail.inMs) | "stopped".
 */
export class RoomFeed {
  constructor({ chatroomId, afterSeq, query, onEvent, onState, onFatal }) {
    this.chatroomId = chatroomId;
    this.lastSeq = afterSeq;
    this.query = query;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.onFatal = onFatal || (() => {});
    this.attempt = 0;
    this.stopped = false;
    this.client = null;
    this.unsubscribe = null;
    this.retryTimer = null;
    this.pongTimer = null;
    this.wake = () => this.retryNow();
  }

  start() {
    window.addEventListener("online", this.wake);
    document.addEventListener("visibilitychange", this.wake);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.wake);
    document.removeEventListener("visibilitychange", this.wake);
    clearTimeout(this.retryTimer);
    clearTimeout(this.pongTimer);
    this.teardown();
    this.onState("stopped", {});
  }

  /** Retry at once (the network came back, or the tab became visible again). */
  retryNow() {
    if (this.stopped || document.visibilityState === "hidden") return;
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.attempt = 0;
      this.connect();
    }
  }

  teardown() {
    if (this.unsubscribe) {
      const unsubscribe = this.unsubscribe;
      this.unsubscribe = null;
      try {
        unsubscribe();
      } catch {
        /* already closed */
      }
    }
    if (this.client) {
      const client = this.client;
      this.client = null;
      client.dispose();
    }
  }

  connect() {
    if (this.stopped) return;
    this.retryTimer = null;
    this.teardown();
    this.onState("connecting", { attempt: this.attempt });
    const token = auth.token;
    const wsUrl = new URL(GRAPHQL_PATH, location.href).href.replace(/^http/, "ws");
    const client = window.graphqlWs.createClient({
      url: wsUrl,
      lazy: true,
      retryAttempts: 0, // reconnecting (with a fresh afterSeq) is done here
      keepAlive: 10_000, // ping every 10 s; a missing pong closes the socket (below)
      connectionParams: () => (token ? { authorization: `Bearer ${token}` } : {}),
      on: {
        connected: () => {
          this.attempt = 0;
          this.onState("live", {});
        },
        ping: (received) => {
          if (received) return;
          clearTimeout(this.pongTimer);
          this.pongTimer = setTimeout(() => {
            // No pong within 5 s: the connection is dead even if the socket looks open.
            if (this.socket && this.socket.readyState === WebSocket.OPEN) {
              this.socket.close(4408, "Pong timeout");
            }
          }, 5_000);
        },
        pong: (received) => {
          if (received) clearTimeout(this.pongTimer);
        },
        opened: (socket) => {
          this.socket = socket;
        },
        closed: () => {
          clearTimeout(this.pongTimer);
          this.socket = null;
        },
      },
    });
    this.client = client;
    let ended = false;
    const end = (err) => {
      if (ended || this.client !== client) return;
      ended = true;
      this.scheduleRetry(err);
    };
    this.unsubscribe = client.subscribe(
      { query: this.query, variables: { chatroomId: this.chatroomId, afterSeq: this.lastSeq } },
      {
        next: (result) => {
          if (this.client !== client) return;
          if (result.errors && result.errors.length) {
            end(result.errors);
            return;
          }
          const event = result.data && result.data.roomEvents;
          if (!event || event.seq <= this.lastSeq) return; // a replay of something seen
          this.lastSeq = event.seq;
          this.onEvent(event);
        },
        error: (err) => end(err),
        complete: () => end(null),
      },
    );
  }

  scheduleRetry(err) {
    if (this.stopped) return;
    const errors = Array.isArray(err) ? err : [];
    const code = errors.length && errors[0].extensions ? errors[0].extensions.code : null;
    if (code === "UNAUTHENTICATED" || code === "NOT_FOUND" || code === "FORBIDDEN") {
      this.teardown();
      this.onFatal(new ApiError(errors[0].message, code, errors));
      return;
    }
    this.teardown();
    // 0.5 s, 1 s, 2 s, ... capped at 10 s, with jitter so many tabs do not reconnect together.
    const base = Math.min(10_000, 500 * 2 ** this.attempt);
    const inMs = Math.round(base / 2 + Math.random() * (base / 2));
    this.attempt += 1;
    this.onState("reconnecting", { inMs, attempt: this.attempt });
    this.retryTimer = setTimeout(() => this.connect(), inMs);
  }
}
