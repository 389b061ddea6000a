// A room's agent slots (SPEC §10): per team role, the machine that runs its agent (and whether
// that machine is online), the harness, the state the daemon last reported, its current activity
// line and last error, with Start / Stop / Restart. A role without a slot says what to run.
//
// Live without polling: the room view passes every AGENT_UPDATED event's `agent` to apply(), and
// each mutation's answer too; versions are kept newest by updatedAt, like tasks (a replay never
// rolls a slot back). The caller's machines (MyMachines) say which slots run on a machine of the
// caller's; they are read again when the tab gets focus, like the people list.
//
// Who sees which button (the server decides; the page only hides what would be refused):
// - Stop: the room owner, or the owner of the slot's machine (even as a viewer: what runs on
//   my machine is mine to stop).
// - Restart: the same people, but only while they may steer the room (not as a viewer).
// - Start (a slot that exists but is stopped): startAgents with the slot's own machine, harness,
//   workdir and options, which needs the machine's owner who may steer the room (not a viewer).
//   The room owner who does not own the machine starts it with restartAgents instead (desired
//   running, a new generation), which is theirs to call.

import { errorText, gql } from "./api.js";
import { busy, confirmDialog, copyText, fill, h, timeEl, toast, withCode } from "./dom.js";

const STATE_WORDS = {
  STARTING: "starting",
  WAITING: "waiting for work",
  WORKING: "working",
  BACKOFF: "restarting",
  NEEDS_ATTENTION: "needs attention",
  CIRCUIT_OPEN: "circuit open",
  SUPERSEDED: "taken over",
  STOPPED: "stopped",
};
const STATE_HINTS = {
  BACKOFF: "The harness crashed; the daemon starts it again after a pause.",
  NEEDS_ATTENTION:
    "The agent did not hand its task off. The task stays with the role: restart the agent, " +
    "or force-complete or cancel the task.",
  CIRCUIT_OPEN: "The harness crashed 5 times in 10 minutes. Restart the agent once it is fixed.",
  SUPERSEDED: "Another daemon of the machine serves this slot now.",
};

/**
 *   const agents = agentsPanel({ roomId, newer });
 *   side.append(agents.el);
 *   agents.setRoom(room); agents.setRole(role); agents.load(room.agents); agents.apply(slot);
 * `newer(current, incoming)` picks the version to keep (room.js's, by updatedAt).
 */
export function agentsPanel({ roomId, newer }) {
  const slots = new Map(); // role -> AgentSlot
  let room = null;
  let myRole = null; // "owner" | "member" | "viewer" | null (not known yet)
  let myMachines = new Map(); // machine id -> Machine, the caller's own
  const asked = new Set(); // machine ids MyMachines was read for (mine or not)

  const list = h("ul", { class: "agent-list", "aria-label": "Agents per role" });
  const summary = h("p", { class: "hint agents-summary" });
  const el = h(
    "section",
    { class: "side-section agents", "aria-labelledby": "agents-title" },
    h("h2", { id: "agents-title", text: "Agents" }),
    summary,
    list,
  );

  const roomOwner = () => myRole === "owner";
  const steers = () => myRole === "owner" || myRole === "member";
  const ownsMachine = (slot) => myMachines.has(slot.machineId);
  const open = () => room && room.status !== "COMPLETED";

  let reading = null; // the MyMachines read in flight

  function loadMachines() {
    const read = gql("MyMachines").then((data) => {
      myMachines = new Map(data.machines.map((m) => [m.id, m]));
      for (const slot of slots.values()) asked.add(slot.machineId);
      render();
    });
    reading = read;
    read
      .finally(() => {
        if (reading === read) reading = null;
      })
      .catch(() => {});
    return read;
  }

  /** A slot on a machine not seen yet may be on one I registered since: read mine again
   * (once per machine; a machine of someone else's stays unknown, and that is the answer). */
  function learnMachine(slot) {
    const id = slot.machineId;
    if (myMachines.has(id) || asked.has(id)) return;
    if (reading) {
      reading.then(() => learnMachine(slot), () => {});
      return;
    }
    asked.add(id);
    loadMachines().catch(() => asked.delete(id));
  }

  function setRoom(next) {
    room = next;
    render();
  }

  function setRole(role) {
    myRole = role;
    render();
  }

  function load(list) {
    for (const slot of list || []) keep(slot);
    render();
  }

  function apply(slot) {
    if (!slot || slot.chatroomId !== roomId) return;
    keep(slot);
    render();
  }

  function keep(slot) {
    slots.set(slot.role, newer(slots.get(slot.role), slot));
    learnMachine(slot);
  }

  // ---- rendering -----------------------------------------------------------------------------

  function render() {
    if (!room) return;
    const focusKey = document.activeElement && document.activeElement.dataset.key;
    fill(
      list,
      room.teamRoles.map((role) => (slots.has(role) ? slotItem(slots.get(role)) : emptyItem(role))),
    );
    const running = room.teamRoles.filter((r) => (slots.get(r) || {}).desiredState === "RUNNING");
    const n = room.teamRoles.length;
    summary.textContent = running.length
      ? `${running.length} of ${n} role${n === 1 ? "" : "s"} set to run on a machine.`
      : "No agent is set to run. An agent slot runs a role's agent on a machine of yours.";
    if (focusKey) {
      const again = el.querySelector(`[data-key="${CSS.escape(focusKey)}"]`);
      if (again && document.activeElement !== again) again.focus();
    }
  }

  /** What the row says about the slot: the reported state, or where it is heading. */
  function stateOf(slot) {
    if (slot.desiredState === "STOPPED" && slot.state !== "STOPPED") {
      return { key: "stopping", word: "stopping…", hint: "Set to stop; its daemon is ending it." };
    }
    if (slot.desiredState === "RUNNING" && slot.state === "STOPPED") {
      const machine = machineOnline(slot);
      return {
        key: "pending",
        word: "not started",
        hint:
          machine === false
            ? `Set to run, but ${slot.machineName} is offline: start its daemon there ` +
              "(chatroom machine start)."
            : `Set to run: waiting for ${slot.machineName}'s daemon to start it.`,
      };
    }
    return {
      key: slot.state.toLowerCase(),
      word: STATE_WORDS[slot.state] || slot.state.toLowerCase(),
      hint: STATE_HINTS[slot.state] || null,
    };
  }

  /** true / false for the caller's own machines; null for others' (machines are their
   * owner's alone: the API says nothing of someone else's heartbeat). */
  function machineOnline(slot) {
    const machine = myMachines.get(slot.machineId);
    return machine ? machine.online : null;
  }

  function slotItem(slot) {
    const state = stateOf(slot);
    const online = machineOnline(slot);
    const li = h("li", {
      class: `agent agent-${state.key}`,
      dataset: { role: slot.role, state: state.key },
    });
    const harness = slot.model ? `${slot.harness} (${slot.model})` : slot.harness;
    li.append(
      h(
        "div",
        { class: "agent-head" },
        h("strong", { class: "agent-role", text: slot.role }),
        h("span", {
          class: `badge agent-state agent-state-${state.key}`,
          text: state.word,
        }),
        h("span", { class: "spacer" }),
        slot.reportedAt
          ? timeEl(slot.reportedAt, { relative: true, prefix: "reported " })
          : null,
      ),
      h(
        "div",
        { class: "agent-meta" },
        h("span", { class: "agent-harness", title: "Harness", text: harness }),
        " on ",
        h("span", { class: "agent-machine", text: slot.machineName }),
        online === null
          ? null
          : h("span", {
              class: `machine-online ${online ? "is-online" : "is-offline"}`,
              text: online ? "online" : "offline",
            }),
      ),
      h("div", { class: "agent-workdir", title: slot.workdir, text: slot.workdir }),
    );
    if (state.hint) li.append(h("p", { class: "agent-note", text: state.hint }));
    if (slot.activity && slot.state !== "STOPPED") {
      li.append(
        h(
          "div",
          { class: "agent-activity", title: slot.activity },
          slot.state === "WORKING" ? h("span", { class: "pulse", "aria-hidden": "true" }) : null,
          h("span", { class: "visually-hidden", text: "Activity: " }),
          h("span", { class: "agent-activity-text", text: slot.activity }),
        ),
      );
    }
    if (slot.lastError) {
      li.append(
        h(
          "div",
          { class: "agent-error" },
          h("span", { class: "agent-error-label", text: "Last error" }),
          h("pre", { class: "agent-error-text", text: slot.lastError }),
        ),
      );
    }
    const actions = slotActions(slot);
    if (actions.length) li.append(h("div", { class: "agent-actions" }, actions));
    return li;
  }

  function slotActions(slot) {
    if (!open()) return [];
    const manages = roomOwner() || ownsMachine(slot);
    const actions = [];
    if (slot.desiredState === "STOPPED") {
      if (ownsMachine(slot) && steers()) {
        actions.push(button(slot, "Start", () => startSlot(slot)));
      } else if (roomOwner()) {
        actions.push(button(slot, "Start", () => run("RestartAgents", "restartAgents", slot)));
      }
      return actions;
    }
    if (manages) {
      actions.push(
        button(slot, "Stop", async () => {
          const ok = await confirmDialog({
            title: `Stop the ${slot.role} agent?`,
            body:
              `Its harness on ${slot.machineName} stops and its token is revoked. A task it ` +
              "holds stays with the role; Start brings the agent back.",
            confirm: "Stop",
            danger: true,
          });
          if (ok) return run("StopAgents", "stopAgents", slot);
        }),
      );
    }
    if (manages && steers()) {
      actions.push(
        button(slot, "Restart", async () => {
          const ok = await confirmDialog({
            title: `Restart the ${slot.role} agent?`,
            body:
              `Its harness on ${slot.machineName} is stopped and started again (an open ` +
              "circuit closes). A task in progress is resumed.",
            confirm: "Restart",
          });
          if (ok) return run("RestartAgents", "restartAgents", slot);
        }),
      );
    }
    return actions;
  }

  function button(slot, label, action) {
    const key = `agent-${label.toLowerCase()}:${slot.role}`;
    const b = h("button", {
      type: "button",
      class: label === "Stop" ? "btn btn-small btn-danger-outline" : "btn btn-small",
      text: label,
      "aria-label": `${label} the ${slot.role} agent`,
      dataset: { key },
    });
    b.addEventListener("click", () => busy(b, action, errorText));
    return b;
  }

  /** A mutation on one role's slot; its answer applies at once (the event follows). */
  async function run(name, field, slot) {
    const data = await gql(name, { input: { chatroomId: roomId, roles: [slot.role] } });
    for (const s of data[field]) apply(s);
    toast(`${slot.role}: ${name === "StopAgents" ? "stopping" : "starting"} its agent.`);
  }

  async function startSlot(slot) {
    const input = {
      chatroomId: roomId,
      roles: [slot.role],
      machineId: slot.machineId,
      harness: slot.harness,
      workdir: slot.workdir,
      model: slot.model,
      command: slot.command,
      freshSession: slot.freshSession,
      taskTimeoutSeconds: slot.taskTimeoutSeconds,
    };
    const data = await gql("StartAgents", { input });
    for (const s of data.startAgents) apply(s);
    toast(`${slot.role}: starting its agent.`);
  }

  /** The command that creates a role's slot on this computer, with the real room id. */
  function startCommand(role) {
    return `chatroom agents start ${roomId} --role ${role} --harness claude --workdir DIR`;
  }

  function emptyItem(role) {
    const li = h("li", { class: "agent agent-none", dataset: { role, state: "none" } });
    li.append(
      h(
        "div",
        { class: "agent-head" },
        h("strong", { class: "agent-role", text: role }),
        h("span", { class: "badge agent-state agent-state-none", text: "no agent" }),
      ),
    );
    if (!steers() || !open()) return li;
    const command = startCommand(role);
    const copy = h("button", {
      type: "button",
      class: "btn btn-small",
      text: "Copy",
      "aria-label": `Copy the command that starts the ${role} agent`,
      dataset: { key: `agent-copy:${role}` },
    });
    copy.addEventListener("click", async () => {
      const ok = await copyText(command);
      toast(
        ok
          ? `Copied. Replace DIR with the ${role}'s working directory.`
          : "Select the command and copy it.",
      );
    });
    li.append(
      h(
        "div",
        { class: "agent-how" },
        h(
          "p",
          { class: "agent-how-text" },
          withCode(
            `Run \`chatroom machine start\` on the computer that should run it, then ` +
              `\`${command}\` (DIR: the agent's working directory).`,
          ),
        ),
        copy,
      ),
    );
    return li;
  }

  return { el, setRoom, setRole, load, apply, loadMachines };
}
