// My rooms: Active / Completed tabs, room cards, "Mark complete", and the create-room form.

import { errorText, gql, newKey } from "./api.js";
import { busy, confirmDialog, fill, h, timeEl, toast, withCode } from "./dom.js";

const STATUS_WORDS = { ACTIVE: "working", WAITING: "waiting", IDLE: "away" };
const ROLE_RE = /^[a-z][a-z0-9-]{0,31}$/;

export function roleChips(room) {
  const byRole = new Map((room.participants || []).map((p) => [p.role, p]));
  return h(
    "ul",
    { class: "chips", "aria-label": "Team" },
    room.teamRoles.map((role) => {
      const p = byRole.get(role);
      const status = p ? p.status : "IDLE";
      const word = STATUS_WORDS[status] || status.toLowerCase();
      return h(
        "li",
        { class: `chip chip-${status.toLowerCase()}`, title: `${role}: ${word}` },
        h("span", { class: "dot", "aria-hidden": "true" }),
        h("span", { text: role }),
        h("span", { class: "visually-hidden", text: `: ${word}` }),
      );
    }),
  );
}

export function roomsView(main, { navigate }) {
  document.title = "My rooms · Chatroom";
  let tab = sessionStorage.getItem("chatroom.roomsTab") === "completed" ? "completed" : "active";
  let data = null;
  let stopped = false;

  const newButton = h("button", {
    type: "button",
    class: "btn btn-primary",
    "aria-expanded": "false",
    "aria-controls": "create-room",
    text: "New room",
  });
  const createBox = h("section", {
    id: "create-room",
    class: "panel create-room",
    hidden: true,
    "aria-labelledby": "create-room-title",
  });
  const tabActive = h("button", {
    type: "button",
    role: "tab",
    id: "tab-active",
    class: "tab",
    "aria-controls": "rooms-panel",
  });
  const tabCompleted = h("button", {
    type: "button",
    role: "tab",
    id: "tab-completed",
    class: "tab",
    "aria-controls": "rooms-panel",
  });
  const list = h("div", { class: "room-grid", "aria-busy": "true" });
  const panel = h("div", { id: "rooms-panel", role: "tabpanel", class: "rooms-panel" }, list);

  main.append(
    h(
      "div",
      { class: "page rooms-page" },
      h(
        "div",
        { class: "page-head" },
        h("h1", { text: "My rooms" }),
        h(
          "div",
          { class: "page-actions" },
          h("button", {
            type: "button",
            class: "btn",
            text: "Refresh",
            onclick: (e) => busy(e.currentTarget, load, errorText),
          }),
          newButton,
        ),
      ),
      createBox,
      h(
        "div",
        { role: "tablist", class: "tabs", "aria-label": "Rooms by status" },
        tabActive,
        tabCompleted,
      ),
      panel,
      h(
        "p",
        { class: "legend hint" },
        h(
          "span",
          { class: "chip chip-active" },
          h("span", { class: "dot", "aria-hidden": "true" }),
          "working",
        ),
        h(
          "span",
          { class: "chip chip-waiting" },
          h("span", { class: "dot", "aria-hidden": "true" }),
          "waiting for work",
        ),
        h(
          "span",
          { class: "chip chip-idle" },
          h("span", { class: "dot", "aria-hidden": "true" }),
          "away",
        ),
      ),
    ),
  );

  function selectTab(name, focus = false) {
    tab = name;
    sessionStorage.setItem("chatroom.roomsTab", name);
    for (const [el, n] of [
      [tabActive, "active"],
      [tabCompleted, "completed"],
    ]) {
      el.setAttribute("aria-selected", String(n === name));
      el.tabIndex = n === name ? 0 : -1;
    }
    panel.setAttribute("aria-labelledby", name === "active" ? "tab-active" : "tab-completed");
    if (focus) (name === "active" ? tabActive : tabCompleted).focus();
    renderList();
  }
  tabActive.addEventListener("click", () => selectTab("active"));
  tabCompleted.addEventListener("click", () => selectTab("completed"));
  for (const el of [tabActive, tabCompleted]) {
    el.addEventListener("keydown", (e) => {
      if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) {
        e.preventDefault();
        selectTab(tab === "active" ? "completed" : "active", true);
      }
    });
  }

  function renderTabs() {
    const a = data ? data.active.length : null;
    const c = data ? data.completed.length : null;
    tabActive.textContent = a === null ? "Active" : `Active (${a})`;
    tabCompleted.textContent = c === null ? "Completed" : `Completed (${c})`;
  }

  function card(room) {
    const completed = room.status === "COMPLETED";
    const actions = h("div", { class: "card-actions" });
    // Completing a room is its owner's (members steer the work, not the room).
    if (!completed && room.myRole === "OWNER") {
      const button = h("button", {
        type: "button",
        class: "btn btn-small",
        text: "Mark complete",
        "aria-label": `Mark room ${room.name} complete`,
      });
      button.addEventListener("click", async () => {
        const ok = await confirmDialog({
          title: `Mark “${room.name}” complete?`,
          body: "Its open tasks are cancelled and the room moves to the Completed tab.",
          confirm: "Mark complete",
        });
        if (!ok) return;
        await busy(
          button,
          async () => {
            await gql("CompleteChatroom", { id: room.id });
            toast(`“${room.name}” is completed.`);
            await load();
          },
          errorText,
        );
      });
      actions.append(button);
    }
    return h(
      "article",
      { class: "card room-card", dataset: { roomId: room.id } },
      h(
        "div",
        { class: "card-head" },
        h(
          "h2",
          { class: "card-title" },
          h("a", {
            href: `/rooms/${encodeURIComponent(room.id)}`,
            "data-link": true,
            text: room.name,
          }),
        ),
        h("span", {
          class: `badge badge-room-${room.status.toLowerCase()}`,
          text: completed ? "completed" : "active",
        }),
      ),
      h(
        "p",
        { class: "card-meta" },
        h("span", { class: "team-name", text: room.teamName }),
        h("span", { "aria-hidden": "true", text: " · " }),
        timeEl(room.createdAt, { prefix: "created " }),
      ),
      roleChips(room),
      actions,
    );
  }

  function renderList() {
    if (!data) return;
    const rooms = data[tab];
    list.setAttribute("aria-busy", "false");
    if (!rooms.length) {
      fill(
        list,
        h(
          "div",
          { class: "empty" },
          h("p", {
            text:
              tab === "active"
                ? "No active rooms yet. Create one to start a team."
                : "No completed rooms.",
          }),
        ),
      );
      return;
    }
    fill(list, rooms.map(card));
  }

  let lastJson = "";
  async function load() {
    const result = await gql("Rooms");
    if (stopped) return;
    const json = JSON.stringify(result);
    if (json === lastJson) return; // unchanged: keep the DOM (and the keyboard focus) as it is
    lastJson = json;
    data = result;
    renderTabs();
    renderList();
  }

  // ---- create ---------------------------------------------------------------------------------

  let teams = null;
  function openCreate() {
    createBox.hidden = false;
    newButton.setAttribute("aria-expanded", "true");
    renderCreate();
  }
  function closeCreate() {
    createBox.hidden = true;
    newButton.setAttribute("aria-expanded", "false");
    newButton.focus();
  }
  newButton.addEventListener("click", () => (createBox.hidden ? openCreate() : closeCreate()));

  async function renderCreate() {
    if (!teams) {
      fill(createBox, h("p", { class: "muted", text: "Loading teams…" }));
      try {
        teams = (await gql("Teams")).teams;
      } catch (err) {
        fill(createBox, h("p", { class: "form-error", role: "alert", text: errorText(err) }));
        return;
      }
    }
    const key = newKey();
    const error = h("p", { class: "form-error", role: "alert", hidden: true });
    const rolesInput = h("input", {
      id: "custom-roles",
      type: "text",
      placeholder: "e.g. planner, builder, reviewer",
      autocomplete: "off",
      "aria-describedby": "custom-roles-hint",
    });
    const entrySelect = h("select", { id: "custom-entry" });
    const customBox = h(
      "div",
      { class: "custom-team stack", hidden: true },
      h("label", { for: "custom-roles", text: "Roles, in order" }),
      rolesInput,
      h(
        "p",
        { id: "custom-roles-hint", class: "hint" },
        withCode("Lower case, separated by commas. `user` is reserved for you."),
      ),
      h("label", { for: "custom-entry", text: "Entry point (gets your messages first)" }),
      entrySelect,
    );
    const parseRoles = () =>
      rolesInput.value
        .split(/[\s,]+/)
        .map((r) => r.trim().toLowerCase())
        .filter(Boolean);
    rolesInput.addEventListener("input", () => {
      const roles = [...new Set(parseRoles())];
      const previous = entrySelect.value;
      fill(
        entrySelect,
        roles.map((r) => h("option", { value: r, text: r })),
      );
      if (roles.includes(previous)) entrySelect.value = previous;
    });

    const options = teams.map((team, i) =>
      h(
        "label",
        { class: "team-option" },
        h("input", { type: "radio", name: "team", value: team.id, checked: i === 0 }),
        h(
          "span",
          { class: "team-option-body" },
          h("strong", { text: team.name }),
          h("span", { class: "muted", text: ` — ${team.roles.join(", ")}` }),
          h("span", { class: "team-desc", text: team.description }),
        ),
      ),
    );
    options.push(
      h(
        "label",
        { class: "team-option" },
        h("input", { type: "radio", name: "team", value: "custom" }),
        h(
          "span",
          { class: "team-option-body" },
          h("strong", { text: "Custom" }),
          h("span", { class: "team-desc", text: "Your own roles and entry point." }),
        ),
      ),
    );
    const nameInput = h("input", {
      id: "room-name",
      type: "text",
      maxlength: 100,
      placeholder: "Defaults to the team's name",
      autocomplete: "off",
    });
    const submit = h("button", { type: "submit", class: "btn btn-primary", text: "Create room" });
    const form = h(
      "form",
      { class: "stack", "aria-label": "Create a room" },
      h("h2", { id: "create-room-title", text: "New room" }),
      h("fieldset", { class: "team-choice" }, h("legend", { text: "Team" }), options, customBox),
      h("label", { for: "room-name", text: "Name (optional)" }),
      nameInput,
      error,
      h(
        "div",
        { class: "form-actions" },
        h("button", { type: "button", class: "btn", text: "Cancel", onclick: closeCreate }),
        submit,
      ),
    );
    form.addEventListener("change", (e) => {
      if (e.target.name === "team") {
        customBox.hidden = e.target.value !== "custom";
        if (!customBox.hidden) rolesInput.focus();
      }
    });
    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape") closeCreate();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      const team = form.querySelector("input[name=team]:checked").value;
      const input = { idempotencyKey: key };
      const name = nameInput.value.trim();
      if (name) input.name = name;
      if (team === "custom") {
        const roles = parseRoles();
        const bad = roles.find((r) => !ROLE_RE.test(r) || r === "user");
        if (!roles.length || bad) {
          error.textContent = roles.length
            ? `“${bad}” is not a valid role: lower case letters, digits and dashes, starting with a letter (not “user”).`
            : "List at least one role.";
          error.hidden = false;
          rolesInput.focus();
          return;
        }
        input.roles = roles;
        input.entryPoint = entrySelect.value || roles[0];
      } else {
        input.teamId = team;
      }
      submit.disabled = true;
      try {
        const room = (await gql("CreateChatroom", { input })).createChatroom;
        navigate(`/rooms/${encodeURIComponent(room.id)}`);
      } catch (err) {
        error.textContent = errorText(err);
        error.hidden = false;
        submit.disabled = false;
      }
    });
    fill(createBox, form);
    form.querySelector("input[name=team]").focus();
  }

  // ---- start ----------------------------------------------------------------------------------

  renderTabs();
  selectTab(tab);
  load().catch((err) => {
    list.setAttribute("aria-busy", "false");
    fill(list, h("p", { class: "form-error", role: "alert", text: errorText(err) }));
  });
  const timer = setInterval(() => load().catch(() => {}), 15_000);
  const onFocus = () => load().catch(() => {});
  window.addEventListener("focus", onFocus);
  return () => {
    stopped = true;
    clearInterval(timer);
    window.removeEventListener("focus", onFocus);
  };
}
