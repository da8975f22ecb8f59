// Lesson 08's page: lesson 06's chat client, in a browser.
//
// The room's protocol is lesson 05's, one WebSocket text message per line: `CONNECT name` first, then
// lines, `/who`, `/quit`; every line the room sends arrives as one message and is shown — its OK, its
// ERRs, its notices (`* …`) and everyone's messages (`name: text`).
//
// The shape: one `state` object says what the page is (asking for a name, joining, chatting; connected or
// waiting to reconnect; the lines so far), the event handlers change it, and `render()` makes the page
// match it. Nothing else touches the page. What the server sends is put in the page with `textContent`
// only — never as HTML — so `<img src=x onerror=…>` from another user is shown as the text it is.

/** The room's rule for names (lesson 05's NAME_PATTERN); the server checks it again. */
const NAME_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
/** After a drop, the first reconnect waits 0.5 s; each failure doubles it, up to 10 s. */
const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 10_000;
/** While the room is paused (lesson 07: Redis unreachable), CONNECT is asked again every 1 s. */
const PAUSED_RETRY_MS = 1000;
/** Lines kept in the page: 1,000 — older ones are removed, so a long session does not grow without end. */
const KEPT_LINES = 1000;
/** The view follows new lines while it is at most this many pixels from the bottom. */
const FOLLOW_SLACK_PX = 48;

const state = {
  /** "name": asking for a name · "joining": CONNECT sent · "chat": the room said OK. */
  phase: "name",
  name: "",
  /** Why the name prompt is shown again (a taken name, the room full), or "". */
  nameError: "",
  /** "offline" · "connecting" · "open" · "waiting" (a reconnect is scheduled). */
  link: "offline",
  /** Reconnects tried since the last OK: the backoff grows with it. */
  attempts: 0,
  /** When the scheduled reconnect runs (`performance.now()`), for the status line. */
  retryAt: 0,
  /** The session ended on purpose — "quit" (/quit) or "cut" (the room disconnected us: idle, …): no reconnect. */
  ended: "",
  /** The last KEPT_LINES lines: { seq, kind, text, time, sender? }. */
  lines: [],
  /** How many lines were ever added: the next line's `seq`. */
  added: 0,
  /** Scroll to the newest line at the next render, wherever the view is (after sending). */
  follow: false,
};

let socket = null;
let retryTimer = 0;

// ── What a line is ──────────────────────────────────────────────────────────────────────────────────

/** A line from the room, as the page shows it: its kind, and the sender of a message. */
function classify(text) {
  if (text.startsWith("OK ")) return { kind: "ok" };
  if (text.startsWith("ERR ")) return { kind: "err" };
  if (text.startsWith("* ")) return { kind: "notice" };
  const colon = text.indexOf(": ");
  const sender = colon > 0 ? text.slice(0, colon) : "";
  if (NAME_PATTERN.test(sender)) return { kind: "message", sender };
  return { kind: "plain" };
}

/** Why a CONNECT was refused, for the name prompt. */
function explainRefusal(text) {
  const reason = text.slice("ERR ".length);
  if (reason.startsWith("name taken: ")) {
    return `The name ${reason.slice("name taken: ".length)} is taken (names are unique, ignoring case) — pick another.`;
  }
  if (reason.startsWith("server full")) return `The room is full (${reason}). Try again later.`;
  return `The room said: ${reason}`;
}

function addLine(text, kind, sender) {
  const now = new Date();
  const time = `${String(now.getHours()).padStart(2, "0")}:${String(now.getMinutes()).padStart(2, "0")}`;
  state.lines.push({ seq: state.added++, kind, text, time, sender });
  if (state.lines.length > KEPT_LINES) state.lines.splice(0, state.lines.length - KEPT_LINES);
}

/** A line of the page's own (a drop, a reconnect), told apart from the room's lines. */
function addLocal(text) {
  addLine(text, "local");
}

// ── The connection ──────────────────────────────────────────────────────────────────────────────────

function chatUrl() {
  const url = new URL("/chat", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

function connect() {
  clearTimeout(retryTimer);
  state.link = "connecting";
  socket = new WebSocket(chatUrl());
  const own = socket;
  own.onopen = () => {
    if (socket !== own) return;
    state.link = "open";
    own.send(`CONNECT ${state.name}`);
    render();
  };
  own.onmessage = (event) => {
    if (socket !== own) return;
    if (typeof event.data === "string") onLine(event.data);
    else addLocal("(a binary message from the server, ignored)");
    render();
  };
  own.onclose = (event) => {
    if (socket !== own) return;
    socket = null;
    onClosed(event);
    render();
  };
}

/** One line from the room. */
function onLine(text) {
  const { kind, sender } = classify(text);
  addLine(text, kind, sender);
  if (state.phase === "joining") {
    if (kind === "ok") {
      state.phase = "chat";
      state.attempts = 0;
    } else if (kind === "err" && text.startsWith("ERR chat paused")) {
      setTimeout(() => {
        if (state.phase === "joining" && socket?.readyState === WebSocket.OPEN)
          socket.send(`CONNECT ${state.name}`);
      }, PAUSED_RETRY_MS);
    } else if (kind === "err") {
      state.phase = "name";
      state.nameError = explainRefusal(text);
    }
  } else if (kind === "notice" && text === "* bye") {
    state.ended = "quit";
  } else if (kind === "notice" && text.startsWith("* disconnected:")) {
    state.ended = "cut";
  }
}

/** The connection closed: reconnect (capped backoff) unless the session ended on purpose. */
function onClosed(event) {
  state.link = "offline";
  const wasIn = state.phase;
  if (state.ended !== "" || wasIn === "name") {
    if (state.ended === "quit") addLocal("You left the chat. Join again below.");
    if (state.ended === "cut") addLocal("The room disconnected you (see above). Join again below.");
    state.ended = "";
    state.phase = "name";
    return;
  }
  const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** state.attempts);
  state.attempts++;
  state.phase = "joining";
  state.link = "waiting";
  state.retryAt = performance.now() + delay;
  const code = event.code ? ` (close code ${event.code})` : "";
  addLocal(`Connection lost${code}. Reconnecting in ${(delay / 1000).toFixed(1)} s…`);
  retryTimer = setTimeout(() => {
    connect();
    render();
  }, delay);
}

// ── What the user does ──────────────────────────────────────────────────────────────────────────────

function onNameSubmitted(event) {
  event.preventDefault();
  const name = document.getElementById("name").value.trim();
  if (!NAME_PATTERN.test(name)) {
    state.nameError = name === "" ? "Please type a name." : "1–32 letters, digits, _ or - (no spaces).";
    return render();
  }
  state.name = name;
  state.nameError = "";
  state.phase = "joining";
  state.attempts = 0;
  if (socket?.readyState === WebSocket.OPEN) socket.send(`CONNECT ${name}`);
  else if (socket === null) connect();
  render();
}

function onLineSubmitted(event) {
  event.preventDefault();
  const input = document.getElementById("input");
  const line = input.value;
  if (line.trim() === "" || socket?.readyState !== WebSocket.OPEN || state.phase !== "chat") return;
  socket.send(line);
  input.value = "";
  state.follow = true;
  render();
}

// ── render(): the page from the state ───────────────────────────────────────────────────────────────

function statusText() {
  if (state.link === "waiting") {
    const seconds = Math.max(0, (state.retryAt - performance.now()) / 1000);
    return `offline — reconnecting in ${seconds.toFixed(1)} s`;
  }
  if (state.link === "connecting") return "connecting…";
  if (state.link === "open" && state.phase === "chat") return `online as ${state.name}`;
  if (state.link === "open") return "joining…";
  return "offline";
}

/** One line as a list item — every piece of it text, never HTML. */
function lineElement(line) {
  const item = document.createElement("li");
  item.className = line.kind;
  item.dataset.seq = String(line.seq);
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = line.time;
  item.append(time);
  if (line.kind === "message") {
    if (line.sender.toLowerCase() === state.name.toLowerCase()) item.classList.add("own");
    const sender = document.createElement("span");
    sender.className = "sender";
    sender.textContent = line.sender;
    item.append(sender, document.createTextNode(line.text.slice(line.sender.length)));
  } else {
    item.append(document.createTextNode(line.text));
  }
  return item;
}

/** The list shows exactly `state.lines`: new ones are appended, ones past KEPT_LINES removed. */
function renderLines() {
  const list = document.getElementById("messages");
  const follow = state.follow || list.scrollHeight - list.scrollTop - list.clientHeight <= FOLLOW_SLACK_PX;
  state.follow = false;
  const oldest = state.lines[0]?.seq ?? state.added;
  while (list.firstElementChild && Number(list.firstElementChild.dataset.seq) < oldest) {
    list.firstElementChild.remove();
  }
  const shown = list.lastElementChild ? Number(list.lastElementChild.dataset.seq) : -1;
  const fresh = state.lines.filter((line) => line.seq > shown).map(lineElement);
  if (fresh.length > 0) list.append(...fresh);
  if (follow) list.scrollTop = list.scrollHeight;
}

function render() {
  const status = document.getElementById("status");
  status.textContent = statusText();
  status.classList.toggle(
    "down",
    state.link === "waiting" || (state.link === "offline" && state.name !== ""),
  );
  const nameForm = document.getElementById("name-form");
  const chatForm = document.getElementById("chat-form");
  const asking = state.phase === "name";
  if (nameForm.hidden === asking) {
    nameForm.hidden = !asking;
    chatForm.hidden = asking;
    const nameInput = document.getElementById("name");
    if (asking && nameInput.value === "") nameInput.value = state.name;
    document.getElementById(asking ? "name" : "input").focus();
  }
  document.getElementById("name-error").textContent = state.nameError;
  document.querySelector("#name-form button").disabled = state.phase !== "name";
  renderLines();
}

document.getElementById("name-form").addEventListener("submit", onNameSubmitted);
document.getElementById("chat-form").addEventListener("submit", onLineSubmitted);
// The reconnect countdown in the status line.
setInterval(() => {
  if (state.link === "waiting") render();
}, 250);
render();
document.getElementById("name").focus();
