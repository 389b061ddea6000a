// Signing in: as a guest (a display name -> createGuestSession), with an account (signIn), or
// by creating one (signUp). The token is kept in localStorage; the app re-renders on
// auth-changed. The user is stored with its kind ("guest" or "account"), which the account
// page uses to offer the guest upgrade.

import { auth, errorText, gql } from "./api.js";
import { fill, h } from "./dom.js";

/** Guest sign-in; after success the app re-renders (auth-changed), then onDone runs if given. */
export function signInForm({ onDone = null, submitLabel = "Continue as guest" } = {}) {
  const input = h("input", {
    id: "guest-name",
    name: "displayName",
    type: "text",
    autocomplete: "nickname",
    maxlength: 100,
    required: true,
    placeholder: "e.g. Ada",
  });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const button = h("button", { type: "submit", class: "btn btn-primary", text: submitLabel });
  const form = h(
    "form",
    { class: "stack", "aria-label": "Sign in as a guest" },
    h("label", { for: "guest-name", text: "Your name" }),
    input,
    h("p", {
      class: "hint",
      text: "A guest needs no password. Its token stays in this browser; you can turn it into an account later and keep your rooms.",
    }),
    error,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!name) {
      input.focus();
      return;
    }
    button.disabled = true;
    error.hidden = true;
    try {
      const data = await gql("CreateGuestSession", { displayName: name }, { token: null });
      const session = data.createGuestSession;
      auth.set(session.token, { ...session.user, kind: "guest" });
      if (onDone) onDone(session);
    } catch (err) {
      error.textContent = errorText(err);
      error.hidden = false;
      button.disabled = false;
    }
  });
  queueMicrotask(() => input.focus());
  return form;
}

/**
 * Username and password: "signin" (signIn), "signup" (signUp, with an optional invite code) or
 * "upgrade" (upgradeGuest: the signed-in guest becomes this account; same user and rooms).
 */
export function accountForm(mode, { onDone = null } = {}) {
  const id = (name) => `${mode}-${name}`;
  const username = h("input", {
    id: id("username"),
    name: "username",
    type: "text",
    autocomplete: "username",
    autocapitalize: "none",
    maxlength: 32,
    required: true,
  });
  const password = h("input", {
    id: id("password"),
    name: "password",
    type: "password",
    autocomplete: mode === "signin" ? "current-password" : "new-password",
    maxlength: 1024,
    required: true,
  });
  const invite =
    mode === "signup"
      ? h("input", {
          id: id("invite"),
          name: "inviteCode",
          type: "text",
          autocomplete: "off",
          "aria-describedby": id("invite-hint"),
        })
      : null;
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const labels = {
    signin: ["Sign in with an account", "Sign in"],
    signup: ["Create an account", "Create account"],
    upgrade: ["Turn this guest into an account", "Create account"],
  };
  const button = h("button", { type: "submit", class: "btn btn-primary", text: labels[mode][1] });
  const form = h(
    "form",
    { class: "stack", "aria-label": labels[mode][0] },
    h("label", { for: id("username"), text: "Username" }),
    username,
    mode === "signin"
      ? null
      : h("p", {
          class: "hint",
          text: "3 to 32 letters, digits, “_”, “.” or “-”. It is also the name others see.",
        }),
    h("label", { for: id("password"), text: "Password" }),
    password,
    mode === "signin" ? null : h("p", { class: "hint", text: "At least 8 characters." }),
    invite ? h("label", { for: id("invite"), text: "Invite code (optional)" }) : null,
    invite,
    invite
      ? h("p", {
          id: id("invite-hint"),
          class: "hint",
          text: "Needed only when this server takes new accounts by invitation.",
        })
      : null,
    error,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    error.hidden = true;
    const input = { username: username.value.trim(), password: password.value };
    try {
      if (mode === "upgrade") {
        const user = (await gql("UpgradeGuest", { input })).upgradeGuest;
        auth.set(auth.token, { ...user, kind: "account" });
        if (onDone) onDone(user);
        return;
      }
      let session;
      if (mode === "signin") {
        session = (await gql("SignIn", { input }, { token: null })).signIn;
      } else {
        const code = invite.value.trim();
        if (code) input.inviteCode = code;
        session = (await gql("SignUp", { input }, { token: null })).signUp;
      }
      auth.set(session.token, { ...session.user, kind: "account" });
      if (onDone) onDone(session);
    } catch (err) {
      // The password is never shown back; the server's message names the rule that failed.
      error.textContent = errorText(err);
      error.hidden = false;
      button.disabled = false;
      const field = err && err.errors && err.errors[0] && (err.errors[0].extensions || {}).field;
      (field === "password"
        ? password
        : field === "inviteCode" && invite
          ? invite
          : username
      ).focus();
    }
  });
  return form;
}

/** The three ways in, as tabs: guest (first), sign in, create account. */
export function signInChoices({ guestLabel = "Continue as guest" } = {}) {
  const choices = [
    ["guest", "Guest", () => signInForm({ submitLabel: guestLabel })],
    ["signin", "Sign in", () => accountForm("signin")],
    ["signup", "Create account", () => accountForm("signup")],
  ];
  const panel = h("div", { id: "sign-in-panel", role: "tabpanel", class: "sign-in-panel" });
  const tabs = choices.map(([key, label]) =>
    h("button", {
      type: "button",
      role: "tab",
      id: `sign-in-tab-${key}`,
      class: "tab",
      "aria-controls": "sign-in-panel",
      text: label,
      dataset: { key },
    }),
  );
  let current = null;
  function select(index, focus = false) {
    current = index;
    tabs.forEach((tab, i) => {
      tab.setAttribute("aria-selected", String(i === index));
      tab.tabIndex = i === index ? 0 : -1;
    });
    panel.setAttribute("aria-labelledby", tabs[index].id);
    // Only the chosen form is in the page, so labels such as "Username" are never doubled.
    fill(panel, choices[index][2]());
    if (focus) tabs[index].focus();
    else queueMicrotask(() => panel.querySelector("input") && panel.querySelector("input").focus());
  }
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(i));
    tab.addEventListener("keydown", (e) => {
      const n = tabs.length;
      const next = {
        ArrowRight: (current + 1) % n,
        ArrowLeft: (current + n - 1) % n,
        Home: 0,
        End: n - 1,
      }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      select(next, true);
    });
  });
  const box = h(
    "div",
    { class: "sign-in-choices" },
    h("div", { role: "tablist", class: "tabs", "aria-label": "How to sign in" }, tabs),
    panel,
  );
  select(0);
  return box;
}
