// One room: the live feed (roomEvents over graphql-transport-ws, resumed by seq after a drop),
// team status, the current task, the queue and the backlog with their actions, the send box,
// the room's people (members.js) and its agent slots (agents.js). A viewer sees the room
// read-only: no send box, no steering (task actions, backlog, interrupt, rename, complete, agent
// prompts and agent controls).
//
// Loading order matters: the room (with lastEventSeq = N, and its agent slots) is read first,
// then the newest messages and the open tasks, then the subscription starts with afterSeq = N.
// Everything that changed after N is replayed; messages are keyed by their seq and tasks,
// participants and agent slots keep the newest version by updatedAt, so a replay never
// duplicates or rolls back anything.

import {
  ApiError,
  auth,
  errorText,
  gql,
  newKey,
  NetworkError,
  operation,
  RoomFeed,
} from "./api.js";
import {
  busy,
  confirmDialog,
  copyText,
  fill,
  fullTime,
  h,
  parseTime,
  refreshRelativeTimes,
  timeEl,
  toast,
} from "./dom.js";
import { agentsPanel } from "./agents.js";
import { renderMarkdown } from "./markdown.js";
import { membersPanel } from "./members.js";

const PAGE = 50;
const TASK_WORDS = {
  PENDING: "pending",
  IN_PROGRESS: "in progress",
  QUEUED: "queued",
  BACKLOG: "backlog",
  COMPLETED: "done",
  CANCELLED: "cancelled",
};
const CLASS_WORDS = { QUESTION: "question", NEW_FEATURE: "new feature", FOLLOW_UP: "follow-up" };
const TYPE_WORDS = { HANDOFF: "handoff", INTERRUPT: "interrupt", JOIN: "join" };
const PARTICIPANT_WORDS = { ACTIVE: "working", WAITING: "waiting", IDLE: "away" };
const ACTIVE_STATUSES = new Set(["PENDING", "IN_PROGRESS"]);
const LONG_MESSAGE = 1200; // characters; longer messages start collapsed

/** The newer of two versions of a row (by updatedAt; ties go to the incoming one). */
function newer(current, incoming) {
  if (!current) return incoming;
  const a = parseTime(current.updatedAt);
  const b = parseTime(incoming.updatedAt);
  return !a || !b || b >= a ? incoming : current;
}

export function agentPrompt(room, role, rolePrompt) {
  const server = location.origin;
  const wait = `chatroom wait-for-message "${room.id}" --role="${role}"`;
  return [
    `# Join chatroom "${room.name}" as ${role}`,
    "",
    `You are the ${role} of a ${room.teamName} team (roles: ${room.teamRoles.join(", ")}; ` +
      `entry point: ${room.entryPoint}). The human directing the team is \`user\`. ` +
      "The team coordinates through chatroom, a server that hands out one task at a time: " +
      "you wait for work, do it, and hand off to the next role with a message.",
    "",
    `Room id: ${room.id}`,
    `Server: ${server}`,
    "",
    "## Set up (once per machine)",
    "",
    "```sh",
    `export CHATROOM_SERVER=${server}`,
    "chatroom auth login    # opens a browser page: approve the login there",
    "```",
    "",
    "## Start now",
    "",
    "Run this in the foreground, and run it again after every handoff:",
    "",
    "```sh",
    `CHATROOM_SERVER=${server} ${wait}`,
    "```",
    "",
    "---",
    "",
    rolePrompt ? rolePrompt.prompt : "",
  ].join("\n");
}

export function roomView(main, { roomId, navigate }) {
  const state = {
    room: null,
    participants: new Map(), // role -> participant
    tasks: new Map(), // id -> task (every version we know of, newest kept)
    taskBySource: new Map(), // message id -> id of the task that message created
    messages: new Map(), // message seq -> message
    hasOlder: false,
    olderCursor: null,
    editing: null, // { taskId, draft }
    prompts: new Map(), // role -> rolePrompt
    myRole: null, // "owner" | "member" | "viewer" | null (not known yet: act as a member)
  };
  const readOnly = () => state.myRole === "viewer";
  // Renaming and completing the room are the owner's (members steer the work, not the room).
  const manages = () => state.myRole === "owner" || state.myRole === null;
  let feed = null;
  let stopped = false;
  const timers = [];
  const cleanupFns = [];

  // ---- skeleton ------------------------------------------------------------------------------

  const title = h("h1", { id: "room-title", class: "room-title", text: "Loading…" });
  const renameButton = h("button", {
    type: "button",
    class: "icon-btn",
    "aria-label": "Rename room",
    title: "Rename room",
    text: "✎",
  });
  const titleWrap = h("div", { class: "title-wrap" }, title, renameButton);
  const teamBadge = h("span", { class: "badge badge-team" });
  const statusBadge = h("span", { class: "badge" });
  const conn = h(
    "span",
    { id: "conn", class: "conn", role: "status", dataset: { state: "connecting" } },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "conn-text", text: "Connecting…" }),
  );
  const interruptButton = h("button", {
    type: "button",
    class: "btn btn-warn",
    text: "Interrupt",
    title: "Stop every agent; the active task goes back to pending",
  });
  const completeRoomButton = h("button", {
    type: "button",
    class: "btn btn-small",
    text: "Mark room complete",
  });
  const roomFacts = h("dl", { class: "facts facts-small" });
  const panelToggle = h("button", {
    type: "button",
    class: "btn panel-toggle",
    "aria-controls": "side",
    "aria-expanded": "false",
    text: "Team & tasks",
  });
  const head = h(
    "header",
    { class: "room-head" },
    h("a", {
      href: "/",
      "data-link": true,
      class: "back",
      "aria-label": "Back to my rooms",
      text: "←",
    }),
    titleWrap,
    h("div", { class: "room-badges" }, teamBadge, statusBadge, conn),
    h("div", { class: "head-actions" }, interruptButton, panelToggle),
  );

  const olderButton = h("button", {
    type: "button",
    class: "btn btn-small load-older",
    text: "Load older messages",
    hidden: true,
  });
  const feedList = h("ol", {
    id: "feed",
    class: "feed",
    "aria-label": "Messages",
    "aria-live": "off",
  });
  const feedEmpty = h("p", {
    class: "feed-empty muted",
    text: "No messages yet. Send the team its first request below.",
    hidden: true,
  });
  const feedScroll = h(
    "div",
    { class: "feed-scroll", tabindex: 0 },
    olderButton,
    feedEmpty,
    feedList,
  );
  const jumpButton = h("button", {
    type: "button",
    class: "jump",
    hidden: true,
    text: "New messages ↓",
  });
  const working = h("div", { class: "working", "aria-live": "polite" });
  const textarea = h("textarea", {
    id: "send-input",
    class: "send-input",
    rows: 2,
    placeholder: "Message the team…",
    "aria-describedby": "send-hint",
  });
  const sendButton = h("button", {
    type: "submit",
    class: "btn btn-primary send-btn",
    text: "Send",
  });
  const sendHint = h("p", { id: "send-hint", class: "hint send-hint" });
  const sendForm = h(
    "form",
    { class: "send-form", "aria-label": "Send a message" },
    h("label", { for: "send-input", class: "visually-hidden", text: "Message" }),
    h("div", { class: "send-row" }, textarea, sendButton),
    sendHint,
  );
  const readOnlyNote = h("p", {
    class: "readonly-note",
    role: "note",
    hidden: true,
    text: "You are a viewer of this room: you can follow it, but not send or steer. Ask its owner to make you a member.",
  });
  const feedCol = h(
    "section",
    { class: "feed-col", "aria-label": "Conversation" },
    feedScroll,
    jumpButton,
    working,
    sendForm,
    readOnlyNote,
  );

  const teamList = h("ul", { class: "team-list" });
  const teamSummary = h("p", { class: "hint team-summary" });
  const currentBox = h("div", { class: "current-box" });
  const queueTitle = h("h2", { text: "Queue" });
  const queueList = h("ol", { class: "task-list", "aria-labelledby": "queue-title" });
  queueTitle.id = "queue-title";
  const backlogTitle = h("h2", { id: "backlog-title", text: "Backlog" });
  const backlogList = h("ul", { class: "task-list", "aria-labelledby": "backlog-title" });
  const backlogInput = h("textarea", {
    id: "backlog-input",
    rows: 2,
    placeholder: "Add a task to the backlog…",
    "aria-label": "New backlog task",
  });
  const backlogForm = h(
    "form",
    { class: "backlog-form", "aria-label": "Add a backlog task" },
    backlogInput,
    h("button", { type: "submit", class: "btn btn-small", text: "Add" }),
  );
  const people = membersPanel({ roomId, onRole: setRole });
  const agents = agentsPanel({ roomId, newer });
  const closeSide = h("button", {
    type: "button",
    class: "icon-btn side-close",
    "aria-label": "Close team and tasks",
    text: "✕",
  });
  const side = h(
    "aside",
    { id: "side", class: "side", "aria-label": "Team and tasks" },
    h("div", { class: "side-head" }, h("strong", { text: "Team & tasks" }), closeSide),
    h(
      "section",
      { class: "side-section", "aria-labelledby": "team-title" },
      h("h2", { id: "team-title", text: "Team" }),
      teamSummary,
      teamList,
    ),
    agents.el,
    h(
      "section",
      { class: "side-section", "aria-labelledby": "current-title" },
      h("h2", { id: "current-title", text: "Current task" }),
      currentBox,
    ),
    h(
      "section",
      { class: "side-section", "aria-labelledby": "queue-title" },
      queueTitle,
      queueList,
    ),
    h(
      "section",
      { class: "side-section", "aria-labelledby": "backlog-title" },
      backlogTitle,
      backlogForm,
      backlogList,
    ),
    people.el,
    h(
      "section",
      { class: "side-section", "aria-labelledby": "room-info-title" },
      h("h2", { id: "room-info-title", text: "Room" }),
      roomFacts,
      completeRoomButton,
    ),
  );

  const page = h(
    "div",
    { class: "room-page" },
    head,
    h("div", { class: "room-body" }, feedCol, side),
  );
  main.append(page);

  // ---- connection indicator ------------------------------------------------------------------

  function setConn(s, detail = {}) {
    conn.dataset.state = s;
    const text = conn.querySelector(".conn-text");
    if (s === "live") text.textContent = "Live";
    else if (s === "connecting")
      text.textContent = detail.attempt ? "Reconnecting…" : "Connecting…";
    else if (s === "reconnecting") {
      const secs = Math.max(1, Math.round((detail.inMs || 0) / 1000));
      text.textContent = `Offline · retrying in ${secs} s`;
    } else text.textContent = "Disconnected";
    conn.title =
      s === "live"
        ? "Receiving changes as they happen"
        : "Not receiving live changes; missed changes are replayed on reconnect";
  }

  // ---- header ----------------------------------------------------------------------------------

  function renderHead() {
    const room = state.room;
    document.title = `${room.name} | Chatroom`;
    title.textContent = room.name;
    teamBadge.textContent = room.teamName;
    const completed = room.status === "COMPLETED";
    statusBadge.textContent = completed ? "completed" : "active";
    statusBadge.className = `badge badge-room-${room.status.toLowerCase()}`;
    interruptButton.hidden = completed || readOnly();
    completeRoomButton.hidden = completed || !manages();
    fill(
      roomFacts,
      h("dt", { text: "Team" }),
      h("dd", { text: `${room.teamName} (${room.teamRoles.join(", ")})` }),
      h("dt", { text: "Entry point" }),
      h("dd", { text: room.entryPoint }),
      h("dt", { text: "Created" }),
      h("dd", { text: fullTime(room.createdAt) }),
      h("dt", { text: "Room id" }),
      h("dd", {}, h("code", { class: "room-id", text: room.id })),
    );
    renameButton.hidden = !manages();
    page.classList.toggle("is-completed", completed);
  }

  renameButton.addEventListener("click", () => {
    const input = h("input", {
      type: "text",
      class: "rename-input",
      maxlength: 100,
      "aria-label": "Room name",
      value: state.room.name,
    });
    const save = async () => {
      const name = input.value.trim();
      if (!name || name === state.room.name) return done();
      input.disabled = true;
      try {
        const room = (await gql("RenameChatroom", { id: roomId, name })).renameChatroom;
        applyRoom(room);
        done();
      } catch (err) {
        input.disabled = false;
        toast(errorText(err), "error");
        input.focus();
      }
    };
    const done = () => {
      titleWrap.replaceChildren(title, renameButton);
      title.textContent = state.room.name;
      renameButton.focus();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        save();
      } else if (e.key === "Escape") {
        e.preventDefault();
        done();
      }
    });
    titleWrap.replaceChildren(
      input,
      h("button", { type: "button", class: "btn btn-small", text: "Save", onclick: save }),
      h("button", { type: "button", class: "btn btn-small", text: "Cancel", onclick: done }),
    );
    input.focus();
    input.select();
  });

  interruptButton.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: "Interrupt the team?",
      body:
        "Every agent stops and is told so. The active task goes back to pending, so work " +
        "resumes when an agent waits for messages again.",
      confirm: "Interrupt",
      danger: true,
    });
    if (!ok) return;
    await busy(
      interruptButton,
      async () => {
        applyRoom((await gql("InterruptChatroom", { id: roomId })).interruptChatroom);
        toast("Interrupt sent.");
      },
      errorText,
    );
  });

  completeRoomButton.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: `Mark “${state.room.name}” complete?`,
      body: "Its open tasks are cancelled and the room moves to the Completed tab.",
      confirm: "Mark complete",
    });
    if (!ok) return;
    await busy(
      completeRoomButton,
      async () => {
        await gql("CompleteChatroom", { id: roomId });
        navigate("/");
      },
      errorText,
    );
  });

  function setPanel(open) {
    page.classList.toggle("side-open", open);
    panelToggle.setAttribute("aria-expanded", String(open));
    document.body.classList.toggle("no-scroll", open);
    if (open) markClipped();
    if (open) closeSide.focus();
    else panelToggle.focus();
  }
  panelToggle.addEventListener("click", () => setPanel(!page.classList.contains("side-open")));
  closeSide.addEventListener("click", () => setPanel(false));
  side.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !e.defaultPrevented && page.classList.contains("side-open")) {
      setPanel(false);
    }
  });

  // ---- feed ------------------------------------------------------------------------------------

  function nearBottom() {
    return feedScroll.scrollHeight - feedScroll.scrollTop - feedScroll.clientHeight < 80;
  }
  function scrollToBottom() {
    feedScroll.scrollTop = feedScroll.scrollHeight;
    jumpButton.hidden = true;
  }
  jumpButton.addEventListener("click", scrollToBottom);
  feedScroll.addEventListener("scroll", () => {
    if (nearBottom()) jumpButton.hidden = true;
  });

  function taskBadge(taskId) {
    const task = taskId ? state.tasks.get(taskId) : null;
    if (!task) return null;
    let text = TASK_WORDS[task.status] || task.status.toLowerCase();
    if (task.status === "QUEUED") {
      const pos = queuedTasks().findIndex((t) => t.id === task.id);
      if (pos >= 0) text += ` #${pos + 1}`;
    }
    if (task.status === "IN_PROGRESS" && task.assignedTo) text += ` · ${task.assignedTo}`;
    return h("span", {
      class: `badge task-badge status-${task.status.toLowerCase()}`,
      title: "Task status",
      text,
    });
  }

  function messageItem(msg) {
    const type = msg.type;
    const taskId = taskIdOf(msg);
    const senderKind = msg.senderRole === "user" ? "user" : type === "JOIN" ? "system" : "agent";
    const headParts = [
      h("span", { class: "sender", text: msg.senderRole }),
      TYPE_WORDS[type]
        ? h("span", {
            class: `badge type-badge type-${type.toLowerCase()}`,
            text: TYPE_WORDS[type],
          })
        : null,
      msg.targetRole
        ? h(
            "span",
            { class: "target" },
            h("span", { "aria-hidden": "true", text: "→ " }),
            h("span", { class: "visually-hidden", text: "to " }),
            msg.targetRole,
          )
        : null,
      msg.classification
        ? h("span", {
            class: `badge class-badge class-${msg.classification.toLowerCase()}`,
            title: "Classification",
            text: CLASS_WORDS[msg.classification] || msg.classification.toLowerCase(),
          })
        : null,
      h("span", { class: "task-badge-slot" }, taskBadge(taskId)),
      h("span", { class: "spacer" }),
      timeEl(msg.createdAt),
    ];
    const li = h("li", {
      class: `msg msg-${senderKind} msg-type-${type.toLowerCase()}`,
      dataset: { seq: String(msg.seq), type: type.toLowerCase(), sender: msg.senderRole },
    });
    if (taskId) li.dataset.taskId = taskId;
    if (type === "JOIN") {
      li.append(h("div", { class: "msg-head" }, headParts));
      if (msg.content) li.append(h("div", { class: "msg-note", text: msg.content }));
      return li;
    }
    const body = h("div", { class: "msg-body markdown" });
    body.append(renderMarkdown(msg.content));
    li.append(h("div", { class: "msg-head" }, headParts), body);
    if (msg.content.length > LONG_MESSAGE) {
      body.classList.add("collapsed");
      const more = h("button", {
        type: "button",
        class: "linklike more",
        "aria-expanded": "false",
        text: "Show more",
      });
      more.addEventListener("click", () => {
        const open = body.classList.toggle("collapsed") === false;
        more.setAttribute("aria-expanded", String(open));
        more.textContent = open ? "Show less" : "Show more";
      });
      li.append(more);
    }
    return li;
  }

  /** The task a message created: from the message itself, or from the task's sourceMessage
   * (a message delivered before its task was linked carries no task). */
  function taskIdOf(msg) {
    return (msg.task && msg.task.id) || state.taskBySource.get(msg.id) || null;
  }

  function sameMessage(a, b) {
    const fields = ["id", "content", "type", "targetRole", "classification", "claimedByRole"];
    return fields.every((f) => a[f] === b[f]);
  }

  /** Insert or replace messages by seq, keeping the list in seq order. */
  function upsertMessages(messages, { fromLive = false } = {}) {
    if (!messages.length) return;
    const stick = nearBottom();
    let appended = false;
    for (const msg of messages) {
      if (msg.task) applyTask(msg.task, { render: false });
      const previous = state.messages.get(msg.seq);
      const keep = previous && previous.task && !msg.task ? { ...msg, task: previous.task } : msg;
      state.messages.set(msg.seq, keep);
      const existing = feedList.querySelector(`li[data-seq="${msg.seq}"]`);
      if (existing) {
        // The same message again (our own send, then its event; or a replay): re-render only
        // when it changed (MESSAGE_UPDATED), so selections and images stay put.
        if (previous && sameMessage(previous, msg)) continue;
        existing.replaceWith(messageItem(keep));
        continue;
      }
      const el = messageItem(keep);
      // Usually the new one goes last; walk back to its place otherwise.
      let after = feedList.lastElementChild;
      while (after && Number(after.dataset.seq) > msg.seq) after = after.previousElementSibling;
      if (after) after.after(el);
      else feedList.prepend(el);
      if (!el.nextElementSibling) appended = true;
    }
    feedEmpty.hidden = state.messages.size > 0;
    if (appended) {
      const mine = messages.some((m) => m.senderRole === "user");
      if (stick || mine || !fromLive) scrollToBottom();
      else jumpButton.hidden = false;
    }
  }

  function refreshTaskBadges() {
    for (const li of feedList.children) {
      const msg = state.messages.get(Number(li.dataset.seq));
      const taskId = msg ? taskIdOf(msg) : null;
      if (!taskId) continue;
      li.dataset.taskId = taskId;
      const slot = li.querySelector(".task-badge-slot");
      const badge = taskBadge(taskId);
      const old = slot && slot.firstElementChild;
      if (
        slot &&
        (!old ||
          !badge ||
          old.textContent !== badge.textContent ||
          old.className !== badge.className)
      ) {
        fill(slot, badge);
      }
    }
  }

  olderButton.addEventListener("click", async () => {
    await busy(
      olderButton,
      async () => {
        const data = await gql("OlderMessages", {
          id: roomId,
          last: PAGE,
          before: state.olderCursor,
        });
        const before = feedScroll.scrollHeight;
        const top = feedScroll.scrollTop;
        setOlder(data.messages.pageInfo);
        upsertMessages(data.messages.nodes, { fromLive: true });
        feedScroll.scrollTop = top + (feedScroll.scrollHeight - before);
      },
      errorText,
    );
  });

  function setOlder(pageInfo) {
    state.hasOlder = pageInfo.hasPreviousPage;
    state.olderCursor = pageInfo.startCursor;
    olderButton.hidden = !state.hasOlder;
  }

  // ---- state updates ---------------------------------------------------------------------------

  function applyRoom(room) {
    if (!room) return;
    if (state.room && newer(state.room, room) !== room) return; // a replayed older version
    state.room = { ...(state.room || {}), ...room };
    agents.setRoom(state.room);
    renderHead();
    renderSend();
  }

  function applyParticipant(p) {
    const merged = newer(state.participants.get(p.role), p);
    state.participants.set(p.role, merged);
  }

  function applyTask(task, { render = true } = {}) {
    const merged = newer(state.tasks.get(task.id), task);
    state.tasks.set(task.id, merged);
    if (task.sourceMessage) state.taskBySource.set(task.sourceMessage.id, task.id);
    if (render) {
      renderTasks();
      refreshTaskBadges();
    }
  }

  function onEvent(event) {
    if (event.room) applyRoom(event.room);
    // A membership change (someone joined, left, or got another role) is a ROOM_UPDATED.
    if (event.kind === "ROOM_UPDATED") people.load().catch(() => {});
    if (event.participant) {
      applyParticipant(event.participant);
      renderTeam();
    }
    if (event.agent) agents.apply(event.agent);
    if (event.task) applyTask(event.task, { render: false });
    if (event.message) upsertMessages([event.message], { fromLive: true });
    if (event.task || event.message) {
      renderTasks();
      refreshTaskBadges();
    }
  }

  // ---- team ------------------------------------------------------------------------------------

  function renderTeam() {
    const room = state.room;
    const focusKey = document.activeElement && document.activeElement.dataset.key;
    const away = [];
    const items = room.teamRoles.map((role) => {
      const p = state.participants.get(role) || { role, status: "IDLE", lastSeenAt: null };
      const word = PARTICIPANT_WORDS[p.status] || p.status.toLowerCase();
      if (p.status === "IDLE") away.push(role);
      const copy = h("button", {
        type: "button",
        class: "btn btn-small",
        text: "Copy prompt",
        "aria-label": `Copy the agent prompt for ${role}`,
        dataset: { key: `prompt:${role}` },
      });
      copy.addEventListener("click", () => copyPrompt(role, copy));
      const view = h("button", {
        type: "button",
        class: "linklike",
        text: "View",
        "aria-label": `View the agent prompt for ${role}`,
        dataset: { key: `view:${role}` },
      });
      view.addEventListener("click", () => showPrompt(role));
      return h(
        "li",
        { class: `member member-${p.status.toLowerCase()}`, dataset: { role } },
        h("span", { class: "dot", "aria-hidden": "true" }),
        h(
          "div",
          { class: "member-main" },
          h(
            "div",
            { class: "member-line" },
            h("strong", { class: "member-role", text: role }),
            role === room.entryPoint ? h("span", { class: "tag", text: "entry point" }) : null,
          ),
          h(
            "div",
            { class: "member-status" },
            h("span", { class: "member-word", text: word }),
            p.status === "IDLE"
              ? h(
                  "span",
                  { class: "muted" },
                  " · ",
                  p.lastSeenAt
                    ? timeEl(p.lastSeenAt, { relative: true, prefix: "last seen " })
                    : "never connected",
                )
              : null,
          ),
        ),
        readOnly() ? null : h("div", { class: "member-actions" }, copy, view),
      );
    });
    fill(teamList, items);
    const n = room.teamRoles.length;
    teamSummary.textContent = away.length
      ? `Away: ${away.join(", ")}.${readOnly() ? "" : " Give an agent its prompt to bring it in."}`
      : `All ${n} agent${n === 1 ? "" : "s"} present.`;
    const workingRoles = room.teamRoles.filter(
      (r) => (state.participants.get(r) || {}).status === "ACTIVE",
    );
    fill(
      working,
      workingRoles.map((r) =>
        h(
          "span",
          { class: "working-line" },
          h("span", { class: "pulse", "aria-hidden": "true" }),
          `${r} is working…`,
        ),
      ),
    );
    restoreFocus(focusKey);
  }

  async function loadPrompt(role) {
    if (!state.prompts.has(role)) {
      const data = await gql("RolePrompt", { id: roomId, role });
      state.prompts.set(role, data.rolePrompt);
    }
    return agentPrompt(state.room, role, state.prompts.get(role));
  }

  async function copyPrompt(role, button) {
    await busy(
      button,
      async () => {
        const text = await loadPrompt(role);
        if (await copyText(text)) toast(`Copied the ${role} prompt. Paste it into the agent.`);
        else showPrompt(role);
      },
      errorText,
    );
  }

  async function showPrompt(role) {
    let text;
    try {
      text = await loadPrompt(role);
    } catch (err) {
      toast(errorText(err), "error");
      return;
    }
    const area = h("textarea", {
      class: "prompt-text",
      readonly: true,
      rows: 16,
      "aria-label": `Agent prompt for ${role}`,
    });
    area.value = text;
    const copy = h("button", { type: "button", class: "btn btn-primary", text: "Copy" });
    const dialog = h(
      "dialog",
      { class: "dialog dialog-wide", "aria-labelledby": "prompt-title" },
      h("h2", { id: "prompt-title", text: `Agent prompt: ${role}` }),
      h("p", {
        class: "hint",
        text: "Paste this into the agent (Claude Code, Codex, …). It tells the agent how to log in and start waiting for work.",
      }),
      area,
      h(
        "form",
        { method: "dialog", class: "dialog-actions" },
        h("button", { type: "submit", class: "btn", text: "Close" }),
        copy,
      ),
    );
    copy.addEventListener("click", async () => {
      area.select();
      toast((await copyText(text)) ? `Copied the ${role} prompt.` : "Select the text and copy it.");
    });
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
    area.scrollTop = 0;
    copy.focus();
  }

  // ---- tasks -----------------------------------------------------------------------------------

  function tasksWith(status) {
    return [...state.tasks.values()].filter((t) => t.status === status);
  }
  function queuedTasks() {
    return tasksWith("QUEUED").sort(
      (a, b) =>
        (a.queuePosition ?? 0) - (b.queuePosition ?? 0) || a.createdAt.localeCompare(b.createdAt),
    );
  }
  function activeTask() {
    return [...state.tasks.values()].find((t) => ACTIVE_STATUSES.has(t.status)) || null;
  }

  function ref(task) {
    return { chatroomId: roomId, taskId: task.id };
  }

  async function taskAction(button, mutation, variables, field, done) {
    await busy(
      button,
      async () => {
        const data = await gql(mutation, variables);
        applyTask(data[field]);
        if (done) done(data[field]);
      },
      errorText,
    );
  }

  function actionButton(label, key, onclick, { danger = false, aria = null } = {}) {
    return h("button", {
      type: "button",
      class: danger ? "btn btn-small btn-danger-outline" : "btn btn-small",
      text: label,
      "aria-label": aria,
      dataset: { key },
      onclick,
    });
  }

  function shortText(content, max = 80) {
    const line = content.replace(/\s+/g, " ").trim();
    return line.length > max ? line.slice(0, max - 1) + "…" : line;
  }

  function taskItem(task, { position = null } = {}) {
    const status = task.status;
    const short = shortText(task.content, 40);
    const li = h("li", {
      class: `task task-${status.toLowerCase()}`,
      dataset: { taskId: task.id, status: status.toLowerCase() },
    });
    const head = h(
      "div",
      { class: "task-head" },
      position !== null ? h("span", { class: "task-pos", text: `#${position}` }) : null,
      h("span", { class: `badge status-${status.toLowerCase()}`, text: TASK_WORDS[status] }),
      task.assignedTo ? h("span", { class: "muted", text: `→ ${task.assignedTo}` }) : null,
      h("span", { class: "spacer" }),
      timeEl(task.createdAt),
    );
    if (state.editing && state.editing.taskId === task.id) {
      li.append(head, taskEditor(task));
      return li;
    }
    const content = h("div", { class: "task-content markdown" });
    content.append(renderMarkdown(task.content));
    const actions = h("div", { class: "task-actions" });
    const edit = () =>
      actionButton(
        "Edit",
        `edit:${task.id}`,
        () => {
          state.editing = { taskId: task.id, draft: task.content };
          renderTasks();
          const area = document.querySelector(`textarea[data-key="editor:${task.id}"]`);
          if (area) area.focus();
        },
        { aria: `Edit task: ${short}` },
      );
    const cancel = () =>
      actionButton(
        "Cancel task",
        `cancel:${task.id}`,
        async (e) => {
          const button = e.currentTarget;
          const ok = await confirmDialog({
            title: "Cancel this task?",
            body: shortText(task.content, 200),
            confirm: "Cancel task",
            danger: true,
          });
          if (ok) await taskAction(button, "CancelTask", { input: ref(task) }, "cancelTask");
        },
        { danger: true, aria: `Cancel task: ${short}` },
      );
    if (status === "PENDING" || status === "IN_PROGRESS") {
      actions.append(
        actionButton(
          "Force complete",
          `force:${task.id}`,
          async (e) => {
            const button = e.currentTarget;
            const ok = await confirmDialog({
              title: "Force-complete the active task?",
              body:
                "It is marked done without a handoff, and the next queued task starts. " +
                (task.assignedTo && status === "IN_PROGRESS"
                  ? `${task.assignedTo} may still be working on it.`
                  : ""),
              confirm: "Force complete",
              danger: true,
            });
            if (ok) {
              await taskAction(
                button,
                "CompleteTask",
                { input: { ...ref(task), force: true } },
                "completeTask",
              );
            }
          },
          { danger: true, aria: `Force complete task: ${short}` },
        ),
      );
      if (status === "IN_PROGRESS") {
        actions.append(
          actionButton(
            "Release",
            `release:${task.id}`,
            async (e) => {
              const button = e.currentTarget;
              const ok = await confirmDialog({
                title: `Take the task back from ${task.assignedTo}?`,
                body:
                  "Use this when the agent is stuck or gone. The task goes back to pending " +
                  `and ${task.assignedTo} (or a restarted agent) can claim it again.`,
                confirm: "Release",
              });
              if (ok) await taskAction(button, "ReleaseTask", { input: ref(task) }, "releaseTask");
            },
            { aria: `Release stuck task: ${short}` },
          ),
        );
      }
      actions.append(cancel());
    } else if (status === "QUEUED") {
      actions.append(edit(), cancel());
    } else if (status === "BACKLOG") {
      actions.append(
        actionButton(
          "Move to queue",
          `move:${task.id}`,
          (e) =>
            taskAction(e.currentTarget, "MoveTaskToQueue", { input: ref(task) }, "moveTaskToQueue"),
          { aria: `Move to queue: ${short}` },
        ),
        edit(),
        actionButton(
          "Done",
          `done:${task.id}`,
          (e) =>
            taskAction(
              e.currentTarget,
              "CompleteTask",
              { input: { ...ref(task), force: false } },
              "completeTask",
            ),
          { aria: `Mark done: ${short}` },
        ),
        cancel(),
      );
    }
    li.append(head, content);
    if (!readOnly()) li.append(actions);
    return li;
  }

  function taskEditor(task) {
    const area = h("textarea", {
      class: "task-editor",
      rows: 3,
      "aria-label": "Task text",
      dataset: { key: `editor:${task.id}` },
    });
    area.value = state.editing.draft;
    area.addEventListener("input", () => {
      state.editing.draft = area.value;
    });
    const save = h("button", { type: "submit", class: "btn btn-small btn-primary", text: "Save" });
    const stop = () => {
      state.editing = null;
      renderTasks();
      const button = document.querySelector(`[data-key="edit:${task.id}"]`);
      if (button) button.focus();
    };
    const form = h(
      "form",
      { class: "task-edit", "aria-label": "Edit task" },
      area,
      h(
        "div",
        { class: "task-actions" },
        save,
        h("button", { type: "button", class: "btn btn-small", text: "Cancel", onclick: stop }),
      ),
      h("p", { class: "hint", text: "Ctrl+Enter saves, Escape cancels." }),
    );
    area.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        stop();
      } else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const content = area.value.trim();
      if (!content) return area.focus();
      await taskAction(save, "UpdateTask", { input: { ...ref(task), content } }, "updateTask", () =>
        stop(),
      );
    });
    return form;
  }

  function restoreFocus(key) {
    if (!key) return;
    const el = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (el && document.activeElement !== el) el.focus();
  }

  function renderTasks() {
    if (!state.room) return;
    const focused = document.activeElement;
    const focusKey = focused && focused.dataset ? focused.dataset.key : null;
    const selection =
      focused && focused.tagName === "TEXTAREA" && focused.dataset.key
        ? [focused.selectionStart, focused.selectionEnd]
        : null;
    if (state.editing) {
      const t = state.tasks.get(state.editing.taskId);
      if (!t || !["QUEUED", "BACKLOG"].includes(t.status)) state.editing = null;
    }

    const current = activeTask();
    if (current) {
      const who =
        current.status === "IN_PROGRESS"
          ? `${current.assignedTo} is working on it`
          : `waiting for ${current.assignedTo || state.room.entryPoint} to pick it up`;
      fill(
        currentBox,
        h("p", { class: "hint", text: who }),
        h("ul", { class: "task-list" }, taskItem(current)),
      );
    } else {
      fill(currentBox, h("p", { class: "muted", text: "Nothing in progress." }));
    }

    const queued = queuedTasks();
    queueTitle.textContent = `Queue (${queued.length})`;
    fill(
      queueList,
      queued.length
        ? queued.map((t, i) => taskItem(t, { position: i + 1 }))
        : h("li", {
            class: "muted empty-item",
            text: "Empty. Messages you send while the team is busy wait here.",
          }),
    );

    const backlog = tasksWith("BACKLOG").sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    backlogTitle.textContent = `Backlog (${backlog.length})`;
    fill(
      backlogList,
      backlog.length
        ? backlog.map((t) => taskItem(t))
        : h("li", {
            class: "muted empty-item",
            text: "Empty. Backlog tasks start only when you move them to the queue.",
          }),
    );

    markClipped();

    restoreFocus(focusKey);
    if (selection && document.activeElement && document.activeElement.tagName === "TEXTAREA") {
      document.activeElement.setSelectionRange(selection[0], selection[1]);
    }
    panelToggle.textContent = `Team & tasks${queued.length ? ` (${queued.length} queued)` : ""}`;
    renderSend();
  }

  /** Long task texts are clipped; fade the clipped ones out rather than cut a line in half. */
  function markClipped() {
    for (const el of side.querySelectorAll(".task-content")) {
      el.classList.toggle("clipped", el.scrollHeight > el.clientHeight + 2);
    }
  }

  backlogForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const content = backlogInput.value.trim();
    if (!content) return backlogInput.focus();
    const button = backlogForm.querySelector("button");
    await busy(
      button,
      async () => {
        const task = (await gql("AddBacklogTask", { input: { chatroomId: roomId, content } }))
          .addBacklogTask;
        backlogInput.value = "";
        applyTask(task);
      },
      errorText,
    );
  });
  backlogInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      backlogForm.requestSubmit();
    }
  });

  // ---- send box --------------------------------------------------------------------------------
  // Never disabled because agents are busy: a message sent while a task is active is queued.

  const touch = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
  let draftKey = newKey();
  let sending = false;

  /** My role in the room changed (or became known): show or hide what a viewer cannot use. */
  function setRole(role) {
    state.myRole = role;
    page.classList.toggle("is-readonly", readOnly());
    sendForm.hidden = readOnly();
    readOnlyNote.hidden = !readOnly();
    backlogForm.hidden = readOnly();
    agents.setRole(role);
    if (!state.room) return;
    renderHead();
    renderTeam();
    renderTasks();
  }

  function renderSend() {
    if (!state.room) return;
    const completed = state.room.status === "COMPLETED";
    textarea.disabled = completed;
    sendButton.disabled = completed;
    const keys = touch ? "" : " Enter sends, Shift+Enter adds a line.";
    if (completed) {
      sendHint.textContent = "This room is completed: it takes no new messages.";
    } else if (activeTask()) {
      sendHint.textContent = `The team is busy: your message will wait in the queue.${keys}`;
    } else {
      sendHint.textContent = `Goes to ${state.room.entryPoint}.${keys}`;
    }
  }

  textarea.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.shiftKey || e.isComposing || touch) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    e.preventDefault();
    sendForm.requestSubmit();
  });
  textarea.addEventListener("input", () => {
    if (!textarea.value) draftKey = newKey();
  });

  sendForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const content = textarea.value.trim();
    if (!content || sending) return;
    sending = true;
    sendButton.textContent = "Sending…";
    sendForm.classList.add("is-sending");
    try {
      const data = await gql("SendMessage", {
        input: { chatroomId: roomId, content, idempotencyKey: draftKey },
      });
      const result = data.sendMessage;
      if (textarea.value.trim() === content) textarea.value = "";
      draftKey = newKey();
      if (result.task) applyTask(result.task, { render: false });
      upsertMessages([result.message]);
      renderTasks();
      refreshTaskBadges();
      if (result.task && result.task.status === "QUEUED") toast("Queued: the team is busy.");
    } catch (err) {
      // The text stays in the box; sending again reuses the same idempotency key, so a
      // message that did reach the server is not posted twice.
      toast(errorText(err), "error");
    } finally {
      sending = false;
      sendButton.textContent = "Send";
      sendForm.classList.remove("is-sending");
      textarea.focus();
    }
  });

  // ---- load ------------------------------------------------------------------------------------

  function fatal(err) {
    if (err instanceof ApiError && err.code === "UNAUTHENTICATED") {
      auth.clear();
      return;
    }
    if (feed) feed.stop();
    const notFound =
      err instanceof ApiError && (err.code === "NOT_FOUND" || err.code === "FORBIDDEN");
    fill(
      main,
      h(
        "section",
        { class: "panel narrow" },
        h("h1", { text: notFound ? "Room not found" : "Cannot open this room" }),
        h("p", { text: notFound ? "It does not exist, or you are not in it." : errorText(err) }),
        h("p", {}, h("a", { href: "/", "data-link": true, text: "Back to my rooms" })),
      ),
    );
  }

  async function load() {
    setConn("connecting");
    // The documents are fetched in parallel with the first reads, not one after another.
    for (const name of ["Feed", "RoomEvents", "SendMessage"]) operation(name).catch(() => {});
    const [roomData] = await Promise.all([
      gql("Room", { id: roomId }),
      // My role decides what is shown; if it cannot be read, the server still refuses what a
      // viewer may not do.
      people.load().catch(() => null),
      // Which slots run on a machine of mine (their Start / Stop / Restart), and its status.
      agents.loadMachines().catch(() => null),
    ]);
    if (stopped) return;
    const room = roomData.chatroom;
    for (const p of room.participants) applyParticipant(p);
    delete room.participants;
    const slots = room.agents;
    delete room.agents;
    applyRoom(room);
    agents.load(slots);
    const afterSeq = room.lastEventSeq;

    const data = await gql("Feed", { id: roomId, last: PAGE });
    if (stopped) return;
    for (const t of data.tasks) applyTask(t, { render: false });
    setOlder(data.messages.pageInfo);
    upsertMessages(data.messages.nodes);
    feedEmpty.hidden = state.messages.size > 0;
    renderTeam();
    renderTasks();
    refreshTaskBadges();
    scrollToBottom();

    const events = await operation("RoomEvents");
    if (stopped) return;
    feed = new RoomFeed({
      chatroomId: roomId,
      afterSeq,
      query: events,
      onEvent,
      onState: setConn,
      onFatal: fatal,
    });
    feed.start();
    window.__chatroomFeed = feed; // for debugging in the console
  }

  load().catch((err) => {
    if (err instanceof NetworkError) {
      setConn("reconnecting", { inMs: 3000 });
      const t = setTimeout(() => {
        if (!stopped) {
          fill(main);
          cleanupFns.push(roomView(main, { roomId, navigate }));
        }
      }, 3000);
      timers.push(t);
      return;
    }
    fatal(err);
  });
  timers.push(setInterval(() => refreshRelativeTimes(page), 30_000));
  // Membership changes arrive as ROOM_UPDATED while the feed is live; the tab getting focus
  // re-reads the people too (after a reconnect, say).
  const onFocus = () => {
    people.load().catch(() => {});
    agents.loadMachines().catch(() => {});
  };
  window.addEventListener("focus", onFocus);
  cleanupFns.push(() => window.removeEventListener("focus", onFocus));

  return () => {
    stopped = true;
    if (feed) feed.stop();
    for (const t of timers) {
      clearTimeout(t);
      clearInterval(t);
    }
    for (const fn of cleanupFns) fn();
    document.body.classList.remove("no-scroll");
  };
}
