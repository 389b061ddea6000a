// /account: who I am, the guest upgrade (upgradeGuest: same user, same rooms) and my sessions:
// every token of mine (this browser, CLI logins, agent tokens), with Revoke.

import { auth, errorText, gql } from "./api.js";
import { busy, confirmDialog, fill, fullTime, h, parseTime, timeEl, toast } from "./dom.js";
import { accountForm } from "./signin.js";

function sessionState(session) {
  if (session.revokedAt) return "revoked";
  const expires = parseTime(session.expiresAt);
  return expires && expires.getTime() <= Date.now() ? "expired" : "active";
}

function sessionName(session) {
  if (session.current) return "This browser";
  if (session.scopeRole) return `Agent token: ${session.scopeRole}`;
  return session.deviceName || "Unnamed session";
}

export function accountView(main, { navigate }) {
  document.title = "Account · Chatroom";
  let stopped = false;

  const facts = h("dl", { class: "facts" });
  const upgradeBox = h("section", {
    class: "panel account-section",
    "aria-labelledby": "upgrade-title",
    hidden: true,
  });
  const sessionsList = h("ul", { class: "session-list", "aria-labelledby": "sessions-title" });
  const ended = h("details", { class: "ended-sessions", hidden: true });
  const revokeOthers = h("button", {
    type: "button",
    class: "btn btn-small btn-danger-outline",
    text: "Revoke all others",
    hidden: true,
  });

  main.append(
    h(
      "div",
      { class: "page account-page" },
      h("div", { class: "page-head" }, h("h1", { text: "Account" })),
      h("section", { class: "panel account-section", "aria-label": "You" }, facts),
      upgradeBox,
      h(
        "section",
        { class: "panel account-section", "aria-labelledby": "sessions-title" },
        h(
          "div",
          { class: "section-head" },
          h("h2", { id: "sessions-title", text: "My sessions" }),
          revokeOthers,
        ),
        h("p", {
          class: "hint",
          text:
            "Every token that acts as you: this browser, CLI logins and agent tokens. Revoking " +
            "one signs it out at once and closes its live connections.",
        }),
        sessionsList,
        ended,
      ),
    ),
  );

  function renderFacts(user) {
    const kind = auth.kind;
    fill(
      facts,
      h("dt", { text: "Name" }),
      h("dd", { class: "account-name", text: user.displayName }),
      h("dt", { text: "Kind" }),
      h("dd", {
        class: "account-kind",
        text:
          kind === "guest"
            ? "Guest (no password: this browser's token is the only way in)"
            : kind === "account"
              ? "Account (username and password)"
              : "Signed in with a token",
      }),
      h("dt", { text: "Member since" }),
      h("dd", { text: user.createdAt ? fullTime(user.createdAt) : "—" }),
    );
    // Shown unless this page knows the user has an account; the server refuses an account
    // that already has one, with a message that says so.
    upgradeBox.hidden = kind === "account";
    if (!upgradeBox.hidden && !upgradeBox.firstChild) {
      fill(
        upgradeBox,
        h("h2", { id: "upgrade-title", text: "Keep your rooms: make this guest an account" }),
        h("p", {
          class: "hint",
          text:
            "Choose a username and password to sign in from any browser or CLI. You stay the " +
            "same user, with the same rooms and sessions.",
        }),
        accountForm("upgrade", {
          onDone: (u) => {
            toast(`You now have an account: sign in as ${u.displayName} anywhere.`);
            upgradeBox.hidden = true;
            renderFacts({ ...user, ...u });
          },
        }),
      );
    }
  }

  function sessionItem(session) {
    const state = sessionState(session);
    const label = sessionName(session);
    const li = h("li", {
      class: `session session-${state}`,
      dataset: { sessionId: session.id, state },
    });
    const tags = [
      session.current ? h("span", { class: "tag tag-current", text: "current" }) : null,
      session.scopeChatroomId
        ? h(
            "a",
            {
              href: `/rooms/${encodeURIComponent(session.scopeChatroomId)}`,
              "data-link": true,
              class: "tag",
              "aria-label": `The room of the ${session.scopeRole} agent token`,
            },
            "room",
          )
        : null,
      h("span", { class: `badge session-state state-${state}`, text: state }),
    ];
    const meta = h(
      "p",
      { class: "session-meta hint" },
      timeEl(session.createdAt, { prefix: "created " }),
      " · ",
      timeEl(session.lastUsedAt, { relative: true, prefix: "used " }),
      " · ",
      state === "revoked"
        ? timeEl(session.revokedAt, { prefix: "revoked " })
        : timeEl(session.expiresAt, { prefix: state === "expired" ? "expired " : "expires " }),
    );
    const main = h(
      "div",
      { class: "session-main" },
      h(
        "div",
        { class: "session-line" },
        h("strong", { class: "session-name", text: label }),
        tags,
      ),
      session.deviceName && (session.current || session.scopeRole)
        ? h("p", { class: "session-device hint", text: session.deviceName })
        : null,
      meta,
    );
    li.append(main);
    if (state === "active") {
      const revoke = h("button", {
        type: "button",
        class: "btn btn-small btn-danger-outline",
        text: session.current ? "Sign out" : "Revoke",
        "aria-label": session.current ? "Sign out of this browser" : `Revoke session: ${label}`,
      });
      revoke.addEventListener("click", () => revokeOne(session, revoke));
      li.append(revoke);
    }
    return li;
  }

  async function revokeOne(session, button) {
    const ok = await confirmDialog({
      title: session.current ? "Sign out of this browser?" : `Revoke “${sessionName(session)}”?`,
      body: session.current
        ? "This browser's token stops working."
        : "That token stops working at once; whatever uses it (a CLI, an agent) is signed out.",
      confirm: session.current ? "Sign out" : "Revoke",
      danger: true,
    });
    if (!ok) return;
    await busy(
      button,
      async () => {
        await gql("RevokeSession", { sessionId: session.id });
        if (session.current) {
          auth.clear();
          navigate("/");
          return;
        }
        toast("Session revoked.");
        await loadSessions();
      },
      errorText,
    );
  }

  revokeOthers.addEventListener("click", async () => {
    const others = (lastSessions || []).filter((s) => !s.current && sessionState(s) === "active");
    const ok = await confirmDialog({
      title: `Revoke ${others.length} other session${others.length === 1 ? "" : "s"}?`,
      body: "Every other browser, CLI and agent token of yours is signed out. This one stays.",
      confirm: "Revoke all others",
      danger: true,
    });
    if (!ok) return;
    await busy(
      revokeOthers,
      async () => {
        for (const s of others) await gql("RevokeSession", { sessionId: s.id });
        toast("Other sessions revoked.");
        await loadSessions();
      },
      errorText,
    );
  });

  let lastSessions = null;
  async function loadSessions() {
    const sessions = (await gql("Sessions")).sessions;
    if (stopped) return;
    lastSessions = sessions;
    // The current one first, then the others newest first (the server's order).
    const live = sessions
      .filter((s) => sessionState(s) === "active")
      .sort((a, b) => Number(b.current) - Number(a.current));
    const gone = sessions.filter((s) => sessionState(s) !== "active");
    fill(sessionsList, live.map(sessionItem));
    revokeOthers.hidden = live.filter((s) => !s.current).length === 0;
    ended.hidden = gone.length === 0;
    fill(
      ended,
      h("summary", { text: `Ended sessions (${gone.length})` }),
      h("ul", { class: "session-list" }, gone.map(sessionItem)),
    );
  }

  gql("Me")
    .then((data) => {
      if (!stopped) renderFacts(data.me);
    })
    .catch((err) => toast(errorText(err), "error"));
  loadSessions().catch((err) => {
    fill(sessionsList, h("li", { class: "form-error", role: "alert", text: errorText(err) }));
  });
  return () => {
    stopped = true;
  };
}
