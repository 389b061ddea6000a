// The single-page app: a tiny router over its views.
//   /              my rooms (or sign-in: guest, account, new account)
//   /rooms/<id>    one room: live feed, team, tasks, send box, people
//   /account       who I am, the guest upgrade, my sessions (revoke)
//   /cli-auth      approve a CLI login (?code=XXXX-XXXX)
//   any path with #invite=<code>   accept a room invite (the link createRoomInvite makes)

import { accountView } from "./account.js";
import { auth, currentUser, errorText, gql } from "./api.js";
import { cliAuthView } from "./cliauth.js";
import { fill, h, refreshRelativeTimes, toast } from "./dom.js";
import { inviteCode, inviteView } from "./invite.js";
import { roomView } from "./room.js";
import { roomsView } from "./rooms.js";
import { signInChoices } from "./signin.js";

const main = document.getElementById("main");
let cleanup = null;

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

function renderNav() {
  const nav = document.getElementById("topnav");
  const user = auth.user;
  if (!auth.token) {
    fill(nav, h("a", { href: "/graphql", class: "navlink", text: "GraphiQL" }));
    return;
  }
  const signOut = h("button", {
    type: "button",
    class: "btn btn-small",
    text: "Sign out",
    onclick: async () => {
      signOut.disabled = true;
      try {
        await gql("RevokeSession", {});
      } catch {
        /* the token may already be gone: forget it anyway */
      }
      auth.clear();
      navigate("/");
    },
  });
  fill(
    nav,
    h("a", { href: "/", "data-link": true, class: "navlink nav-rooms", text: "Rooms" }),
    h("a", { href: "/graphql", class: "navlink", text: "GraphiQL" }),
    h("a", {
      href: "/account",
      "data-link": true,
      class: "whoami",
      title:
        auth.kind === "guest"
          ? "Signed in as a guest: your account and sessions"
          : "Your account and sessions",
      "aria-label": `Account: ${user && user.displayName ? user.displayName : "you"}`,
      text: user && user.displayName ? user.displayName : "Account",
    }),
    signOut,
  );
}

function render() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* a view's cleanup must never block navigation */
    }
    cleanup = null;
  }
  renderNav();
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const params = new URLSearchParams(location.search);
  fill(main);
  document.body.dataset.view = "";

  if (path === "/cli-auth") {
    document.body.dataset.view = "cli-auth";
    cleanup = cliAuthView(main, { code: params.get("code") || "", navigate });
    return;
  }
  const invite = inviteCode();
  if (!auth.token) {
    document.body.dataset.view = "sign-in";
    document.title = "Sign in · Chatroom";
    main.append(
      h(
        "section",
        { class: "panel narrow" },
        h("h1", { text: invite ? "You are invited to a room" : "Welcome to chatroom" }),
        h("p", {
          class: "muted",
          text: invite
            ? "Sign in, create an account or continue as a guest; then you can join the room."
            : "Direct a team of AI coding agents: send a request, watch them hand the work " +
              "to each other, and keep the queue in order.",
        }),
        signInChoices(),
      ),
    );
    return;
  }
  if (invite) {
    document.body.dataset.view = "invite";
    cleanup = inviteView(main, { code: invite, navigate });
    return;
  }
  if (path === "/account") {
    document.body.dataset.view = "account";
    cleanup = accountView(main, { navigate });
    return;
  }
  const room = path.match(/^\/rooms\/([^/]+)$/);
  if (room) {
    document.body.dataset.view = "room";
    cleanup = roomView(main, { roomId: decodeURIComponent(room[1]), navigate });
    return;
  }
  if (path !== "/") {
    main.append(
      h(
        "section",
        { class: "panel narrow" },
        h("h1", { text: "Page not found" }),
        h("p", {}, h("a", { href: "/", "data-link": true, text: "Back to my rooms" })),
      ),
    );
    return;
  }
  document.body.dataset.view = "rooms";
  cleanup = roomsView(main, { navigate });
}

// Same-page links (<a data-link>) navigate without a reload.
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a[data-link]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", render);

// Signed out elsewhere (another tab, or the server refused the token): back to sign-in.
let hadToken = Boolean(auth.token);
window.addEventListener("auth-changed", () => {
  renderNav();
  const has = Boolean(auth.token);
  if (hadToken && !has) toast("You are signed out.", "info");
  if (hadToken !== has) {
    hadToken = has;
    render();
  }
});
window.addEventListener("storage", (event) => {
  if (event.key === "chatroom.token") window.dispatchEvent(new CustomEvent("auth-changed"));
});

setInterval(() => refreshRelativeTimes(), 30_000);

// A token placed here by other means (GraphiQL, a test) comes without the user's name.
if (auth.token && !auth.user) currentUser().catch(() => {});
// An invite link opened in this tab. Other fragments (the skip link's #main) keep the view.
window.addEventListener("hashchange", () => {
  if (inviteCode()) render();
});

window.addEventListener("unhandledrejection", (event) => {
  toast(errorText(event.reason), "error");
});

render();
