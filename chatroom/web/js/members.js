// A room's people (SPEC §12): the owner, members and viewers. The owner also creates invite
// links (shown once, with a Copy button), changes a member's role and removes people.
//
// A member sends and steers (queue, backlog, interrupt, agents); a viewer only reads. The
// server enforces this; the page only hides what the caller cannot use.

import { currentUser, errorText, gql } from "./api.js";
import { busy, confirmDialog, copyText, fill, fullTime, h, toast } from "./dom.js";

const ROLE_WORDS = {
  owner: "owner",
  member: "member",
  viewer: "viewer",
};
const ROLE_HINTS = {
  MEMBER: "Member: sends messages, steers the queue and backlog, runs agents",
  VIEWER: "Viewer: reads the room, nothing else",
};
const LIFETIMES = [
  [86_400, "1 day"],
  [604_800, "7 days"],
  [2_592_000, "30 days"],
];

/**
 * The "People" section of the room's side panel.
 *   const people = membersPanel({ roomId, onRole });
 *   side.append(people.el); await people.load();   // resolves to my role in the room
 * onRole(role) runs whenever my role changes: "owner" | "member" | "viewer" | null (unknown).
 */
export function membersPanel({ roomId, onRole }) {
  let members = [];
  let me = null;
  let myRole = null;

  const list = h("ul", { class: "people-list", "aria-label": "People in this room" });
  const inviteBox = h("div", { class: "invite-box" });
  const el = h(
    "section",
    { class: "side-section people", "aria-labelledby": "people-title" },
    h("h2", { id: "people-title", text: "People" }),
    list,
    inviteBox,
  );

  async function load() {
    const [user, data] = await Promise.all([
      currentUser(),
      gql("RoomMembers", { chatroomId: roomId }),
    ]);
    me = user;
    members = data.roomMembers;
    const mine = members.find((m) => m.user.id === me.id);
    const role = mine ? mine.role : null;
    const changed = role !== myRole;
    myRole = role;
    render();
    if (changed) onRole(role);
    return role;
  }

  function render() {
    const owner = myRole === "owner";
    fill(
      list,
      members.map((m) => personItem(m, owner)),
    );
    if (owner) {
      if (!inviteBox.firstChild) fill(inviteBox, inviteForm());
    } else {
      fill(inviteBox);
    }
  }

  function personItem(member, owner) {
    const name = member.user.displayName;
    const you = me && member.user.id === me.id;
    const li = h("li", {
      class: `person person-${member.role}`,
      dataset: { userId: member.user.id, role: member.role },
    });
    const who = h(
      "div",
      { class: "person-main" },
      h("strong", { class: "person-name", text: name }),
      you ? h("span", { class: "tag", text: "you" }) : null,
    );
    if (!owner || member.role === "owner") {
      li.append(
        who,
        h("span", { class: `badge role-${member.role}`, text: ROLE_WORDS[member.role] || "" }),
      );
      return li;
    }
    const select = h(
      "select",
      { class: "person-role", "aria-label": `Role of ${name}` },
      h("option", { value: "MEMBER", text: "member", selected: member.role === "member" }),
      h("option", { value: "VIEWER", text: "viewer", selected: member.role === "viewer" }),
    );
    select.addEventListener("change", () =>
      busy(
        select,
        async () => {
          try {
            const data = await gql("SetMemberRole", {
              chatroomId: roomId,
              userId: member.user.id,
              role: select.value,
            });
            member.role = data.setMemberRole.role;
            toast(`${name} is now a ${member.role}.`);
          } finally {
            render();
          }
        },
        errorText,
      ),
    );
    const remove = h("button", {
      type: "button",
      class: "btn btn-small btn-danger-outline",
      text: "Remove",
      "aria-label": `Remove ${name} from the room`,
    });
    remove.addEventListener("click", async () => {
      const ok = await confirmDialog({
        title: `Remove ${name}?`,
        body: "They lose access to this room at once. An invite link can bring them back.",
        confirm: "Remove",
        danger: true,
      });
      if (!ok) return;
      await busy(
        remove,
        async () => {
          await gql("RemoveMember", { chatroomId: roomId, userId: member.user.id });
          toast(`${name} was removed.`);
          await load();
        },
        errorText,
      );
    });
    li.append(who, h("div", { class: "person-actions" }, select, remove));
    return li;
  }

  function inviteForm() {
    const role = h(
      "select",
      { id: "invite-role", "aria-describedby": "invite-role-hint" },
      h("option", { value: "MEMBER", text: "Member" }),
      h("option", { value: "VIEWER", text: "Viewer (read only)" }),
    );
    const roleHint = h("p", { id: "invite-role-hint", class: "hint", text: ROLE_HINTS.MEMBER });
    role.addEventListener("change", () => (roleHint.textContent = ROLE_HINTS[role.value]));
    const expiry = h(
      "select",
      { id: "invite-expiry" },
      LIFETIMES.map(([seconds, label]) =>
        h("option", { value: String(seconds), text: label, selected: seconds === 604_800 }),
      ),
    );
    const uses = h("input", {
      id: "invite-uses",
      type: "number",
      min: 1,
      max: 1000,
      step: 1,
      value: "1",
      inputmode: "numeric",
      required: true,
    });
    const submit = h("button", { type: "submit", class: "btn btn-small", text: "Create link" });
    const result = h("div", { class: "invite-result", "aria-live": "polite" });
    const form = h(
      "form",
      { class: "invite-form", "aria-label": "Invite people" },
      h("h3", { text: "Invite by link" }),
      h(
        "div",
        { class: "invite-fields" },
        h("label", { for: "invite-role", text: "Role" }),
        role,
        h("label", { for: "invite-expiry", text: "Expires after" }),
        expiry,
        h("label", { for: "invite-uses", text: "Uses" }),
        uses,
      ),
      roleHint,
      submit,
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const maxUses = Number(uses.value);
      if (!Number.isInteger(maxUses) || maxUses < 1 || maxUses > 1000) {
        uses.setCustomValidity("1 to 1000 uses.");
        uses.reportValidity();
        return;
      }
      busy(
        submit,
        async () => {
          const data = await gql("CreateRoomInvite", {
            input: {
              chatroomId: roomId,
              role: role.value,
              expiresInSeconds: Number(expiry.value),
              maxUses,
            },
          });
          fill(result, inviteResult(data.createRoomInvite, maxUses));
          result.querySelector("input").select();
        },
        errorText,
      );
    });
    uses.addEventListener("input", () => uses.setCustomValidity(""));
    return h("div", {}, form, result);
  }

  function inviteResult(invite, maxUses) {
    const link = h("input", {
      type: "text",
      class: "invite-link",
      readonly: true,
      value: invite.url,
      "aria-label": "Invite link",
    });
    const copy = h("button", { type: "button", class: "btn btn-small btn-primary", text: "Copy" });
    copy.addEventListener("click", async () => {
      link.select();
      toast(
        (await copyText(invite.url)) ? "Copied the invite link." : "Select the link and copy it.",
      );
    });
    const role = invite.role === "VIEWER" ? "viewer" : "member";
    return h(
      "div",
      { class: "invite-made" },
      h("div", { class: "invite-link-row" }, link, copy),
      h("p", {
        class: "hint",
        text:
          `Joins as a ${role}; ${maxUses === 1 ? "one use" : `up to ${maxUses} uses`}; ` +
          `expires ${fullTime(invite.expiresAt)}. Shown once: copy it now.`,
      }),
    );
  }

  return {
    el,
    load,
    get role() {
      return myRole;
    },
  };
}
