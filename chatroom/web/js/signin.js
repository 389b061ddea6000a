// Guest sign-in: a display name -> createGuestSession; the token is kept in localStorage.

import { auth, errorText, gql } from "./api.js";
import { h } from "./dom.js";

const CREATE_GUEST = `mutation CreateGuest($name: String) {
  createGuestSession(displayName: $name) { token user { id displayName } }
}`;

/** The form; after success the app re-renders (auth-changed), then onDone runs if given. */
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
      text: "A guest account needs no password. Its token stays in this browser.",
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
      const data = await gql(CREATE_GUEST, { name }, { token: null });
      const session = data.createGuestSession;
      auth.set(session.token, session.user);
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
