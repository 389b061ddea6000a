// The CLI login approval page: /cli-auth?code=XXXX-XXXX.
// `chatroom auth login` prints a code and this URL; here the person signed in to the web page
// (as a guest, first, if needed) sees which device asks, until when, and approves or denies.

import { auth, errorText, gql } from "./api.js";
import { fill, fullTime, h, parseTime, withCode } from "./dom.js";
import { signInChoices } from "./signin.js";

const CODE_RE = /^[A-Z0-9]{4}-?[A-Z0-9]{4}$/;

function normalize(code) {
  const raw = code.toUpperCase().replace(/[^A-Z0-9]/g, "");
  return raw.length === 8 ? `${raw.slice(0, 4)}-${raw.slice(4)}` : code.trim().toUpperCase();
}

function mmss(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  return `${m}:${String(s).padStart(2, "0")}`;
}

export function cliAuthView(main, { code, navigate }) {
  document.title = "Approve CLI login · Chatroom";
  const box = h("section", { class: "panel narrow cli-auth", "aria-labelledby": "cli-title" });
  main.append(box);
  let timer = null;
  const stop = () => {
    if (timer) clearInterval(timer);
    timer = null;
  };

  function header(sub) {
    return [
      h("h1", { id: "cli-title", text: "Approve a CLI login" }),
      sub ? h("p", { class: "muted", text: sub }) : null,
    ];
  }

  function askCode(message) {
    const input = h("input", {
      id: "cli-code",
      type: "text",
      autocomplete: "off",
      autocapitalize: "characters",
      spellcheck: false,
      placeholder: "XXXX-XXXX",
      maxlength: 9,
      required: true,
      value: code,
    });
    const form = h(
      "form",
      { class: "stack", "aria-label": "Enter the login code" },
      h("label", { for: "cli-code" }, withCode("Code shown by `chatroom auth login`")),
      input,
      message ? h("p", { class: "form-error", role: "alert", text: message }) : null,
      h("button", { type: "submit", class: "btn btn-primary", text: "Continue" }),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const value = normalize(input.value);
      if (!CODE_RE.test(value)) {
        input.setCustomValidity("The code looks like ABCD-1234.");
        input.reportValidity();
        return;
      }
      navigate(`/cli-auth?code=${encodeURIComponent(value)}`, { replace: true });
    });
    input.addEventListener("input", () => input.setCustomValidity(""));
    fill(box, header("Type the code your terminal shows."), form);
    input.focus();
  }

  function result(kind, title, text) {
    stop();
    fill(
      box,
      h("h1", { id: "cli-title", text: title }),
      h("p", { class: `result result-${kind}`, role: "status" }, withCode(text)),
      h("p", {}, h("a", { href: "/", "data-link": true, text: "Go to my rooms" })),
    );
  }

  function show(request) {
    stop();
    if (request.status === "APPROVED" || request.status === "COLLECTED") {
      result(
        "ok",
        "Login approved",
        "This CLI login is approved. You can close this tab and return to your terminal.",
      );
      return;
    }
    if (request.status === "DENIED") {
      result(
        "denied",
        "Login denied",
        "This CLI login was denied. Run `chatroom auth login` again if that was a mistake.",
      );
      return;
    }
    if (request.status === "EXPIRED") {
      result(
        "expired",
        "Code expired",
        "This code has expired. Run `chatroom auth login` again for a new one.",
      );
      return;
    }
    const expires = parseTime(request.expiresAt);
    const countdown = h("strong", { class: "countdown" });
    const approve = h("button", { type: "button", class: "btn btn-primary", text: "Approve" });
    const deny = h("button", { type: "button", class: "btn btn-danger-outline", text: "Deny" });
    const error = h("p", { class: "form-error", role: "alert", hidden: true });
    const user = auth.user;
    fill(
      box,
      header("A terminal asks to sign in to chatroom as you."),
      h(
        "dl",
        { class: "facts" },
        h("dt", { text: "Device" }),
        h("dd", { class: "device-name", text: request.deviceName || "unnamed device" }),
        h("dt", { text: "Code" }),
        h("dd", {}, h("code", { class: "user-code", text: request.userCode })),
        h("dt", { text: "Expires" }),
        h(
          "dd",
          {},
          countdown,
          h("span", { class: "muted", text: ` (${fullTime(request.expiresAt)})` }),
        ),
        h("dt", { text: "Signs in as" }),
        h("dd", {
          text:
            user && user.displayName
              ? `${user.displayName}${auth.kind === "guest" ? " (guest)" : ""}`
              : "you",
        }),
      ),
      h(
        "p",
        { class: "hint" },
        withCode(
          "Approve only if you just ran `chatroom auth login` and the code matches your terminal.",
        ),
      ),
      error,
      h("div", { class: "form-actions" }, deny, approve),
    );
    const tick = () => {
      const left = expires ? expires.getTime() - Date.now() : 0;
      countdown.textContent = mmss(left);
      if (left <= 0) {
        result(
          "expired",
          "Code expired",
          "This code has expired. Run `chatroom auth login` again for a new one.",
        );
      }
    };
    tick();
    timer = setInterval(tick, 1000);
    const decide = async (mutation, field, button) => {
      approve.disabled = true;
      deny.disabled = true;
      error.hidden = true;
      try {
        const data = await gql(mutation, { code: request.userCode });
        show(data[field]);
      } catch (err) {
        error.textContent = errorText(err);
        error.hidden = false;
        approve.disabled = false;
        deny.disabled = false;
        button.focus();
      }
    };
    approve.addEventListener("click", () => decide("ApproveCliLogin", "approveCliLogin", approve));
    deny.addEventListener("click", () => decide("DenyCliLogin", "denyCliLogin", deny));
    approve.focus();
  }

  async function load() {
    if (!code) {
      askCode();
      return;
    }
    const normalized = normalize(code);
    if (!CODE_RE.test(normalized)) {
      askCode("That is not a login code. It looks like ABCD-1234.");
      return;
    }
    fill(box, header(), h("p", { class: "muted", text: "Loading the request…" }));
    try {
      const data = await gql("CliLoginRequest", { code: normalized });
      show(data.cliLoginRequest);
    } catch (err) {
      if (err.code === "NOT_FOUND") askCode(errorText(err));
      else
        fill(box, header(), h("p", { class: "form-error", role: "alert", text: errorText(err) }));
    }
  }

  if (!auth.token) {
    fill(
      box,
      header("First sign in, so the CLI can act as you."),
      code ? h("p", {}, "Code: ", h("code", { class: "user-code", text: normalize(code) })) : null,
      signInChoices({ guestLabel: "Sign in as a guest and continue" }),
    );
    // auth-changed re-renders this view once signed in.
  } else {
    load();
  }
  return stop;
}
