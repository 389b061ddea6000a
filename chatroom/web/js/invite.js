// Accepting a room invite. createRoomInvite makes links of the form <server>/#invite=<code>:
// the code sits in the fragment, so it never reaches a server log or a Referer header. The
// person signs in first if needed (main.js), then presses Join; acceptRoomInvite adds them to
// the room with the invite's role and the page opens the room.

import { errorText, gql } from "./api.js";
import { fill, h, toast } from "./dom.js";

/** The invite code in this page's URL (#invite=<code>), or null. */
export function inviteCode() {
  const hash = location.hash.replace(/^#/, "");
  const code = new URLSearchParams(hash).get("invite");
  return code && code.trim() ? code.trim() : null;
}

export function inviteView(main, { code, navigate }) {
  document.title = "Join a room · Chatroom";
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const join = h("button", { type: "button", class: "btn btn-primary", text: "Join the room" });
  const cancel = h("button", {
    type: "button",
    class: "btn",
    text: "Not now",
    // Leaving drops the code from the address bar.
    onclick: () => navigate("/", { replace: true }),
  });
  const box = h(
    "section",
    { class: "panel narrow invite-page", "aria-labelledby": "invite-title" },
    h("h1", { id: "invite-title", text: "Join a room" }),
    h("p", {
      text:
        "Someone shared an invite link to their chatroom with you. Joining adds the room to " +
        "your rooms, with the role the invite gives (member or viewer).",
    }),
    error,
    h("div", { class: "form-actions" }, cancel, join),
  );
  main.append(box);
  join.addEventListener("click", async () => {
    join.disabled = true;
    error.hidden = true;
    try {
      const room = (await gql("AcceptRoomInvite", { code })).acceptRoomInvite;
      toast(`You joined “${room.name}”.`);
      navigate(`/rooms/${encodeURIComponent(room.id)}`, { replace: true });
    } catch (err) {
      error.textContent = errorText(err);
      error.hidden = false;
      join.disabled = false;
      fill(
        box.querySelector(".form-actions"),
        h("a", { href: "/", "data-link": true, class: "btn", text: "Go to my rooms" }),
        join,
      );
    }
  });
  join.focus();
  return () => {};
}
