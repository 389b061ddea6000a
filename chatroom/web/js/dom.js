// Small DOM helpers. All text goes in through textContent (never innerHTML); the only HTML
// the page inserts is sanitised markdown (markdown.js).

/**
 * h("button", { class: "btn", onclick: fn, "aria-label": "Close" }, "text", childNode, [more])
 * Props: class, text, dataset ({...}), on<event> handlers, boolean props (disabled, hidden...),
 * anything else as an attribute. Children: strings (as text), nodes, arrays, null/false skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, "");
    else if (key in el && typeof el[key] !== "function" && !key.includes("-") && key !== "list") {
      el[key] = value;
    } else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Text with `backticked` parts shown as code (as text nodes: nothing is parsed as HTML). */
export function withCode(text) {
  return text.split("`").map((part, i) => (i % 2 ? h("code", { text: part }) : part));
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Replace el's children with these. */
export function fill(el, ...children) {
  clear(el);
  return append(el, children);
}

// ---- time ---------------------------------------------------------------------------------------

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
const dayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

export function parseTime(iso) {
  if (!iso) return null;
  // The server's DateTime is ISO 8601; a value without a zone is UTC.
  const hasZone = /[zZ]|[+-]\d\d:?\d\d$/.test(iso);
  const d = new Date(hasZone ? iso : iso + "Z");
  return Number.isNaN(d.getTime()) ? null : d;
}

/** A <time> element: short text, full date in the title. */
export function timeEl(iso, { relative = false, prefix = "" } = {}) {
  const d = parseTime(iso);
  if (!d) return h("span", { class: "muted", text: prefix + "never" });
  const text = relative ? relativeTime(d) : shortTime(d);
  return h("time", {
    datetime: d.toISOString(),
    title: dateTimeFmt.format(d),
    dataset: relative ? { relative: "1", prefix } : {},
    text: prefix + text,
  });
}

export function shortTime(d) {
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay ? timeFmt.format(d) : `${dayFmt.format(d)}, ${timeFmt.format(d)}`;
}

export function fullTime(iso) {
  const d = parseTime(iso);
  return d ? dateTimeFmt.format(d) : "";
}

export function relativeTime(d) {
  const seconds = Math.round((Date.now() - d.getTime()) / 1000);
  if (seconds < 45) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  const days = Math.round(hours / 24);
  if (days < 14) return `${days} d ago`;
  return dayFmt.format(d);
}

/** Refresh every relative <time> under root (call on an interval). */
export function refreshRelativeTimes(root = document) {
  for (const el of root.querySelectorAll("time[data-relative]")) {
    const d = new Date(el.getAttribute("datetime"));
    el.textContent = (el.dataset.prefix || "") + relativeTime(d);
  }
}

// ---- feedback -----------------------------------------------------------------------------------

/** A short message in the corner (role=status, so screen readers hear it). */
export function toast(text, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = h("div", { class: `toast toast-${kind}`, text });
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

/**
 * A modal confirmation (native <dialog>: focus is trapped, Escape cancels).
 * Resolves true when confirmed.
 */
export function confirmDialog({ title, body, confirm = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const ok = h("button", {
      type: "submit",
      value: "ok",
      class: danger ? "btn btn-danger" : "btn btn-primary",
      text: confirm,
    });
    const dialog = h(
      "dialog",
      { class: "dialog", "aria-labelledby": "confirm-title" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "confirm-title", text: title }),
        body ? h("p", { text: body }) : null,
        h(
          "div",
          { class: "dialog-actions" },
          h("button", { type: "submit", value: "cancel", class: "btn", text: "Cancel" }),
          ok,
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "ok");
    });
    document.body.append(dialog);
    dialog.showModal();
    ok.focus();
  });
}

/** Copy text to the clipboard; falls back to a selected textarea on insecure origins. */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* fall through */
  }
  const area = h("textarea", { class: "offscreen", readonly: true, "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

/** Run an async action from a button: disables it meanwhile, reports errors as a toast. */
export async function busy(button, action, errorText) {
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (err) {
    toast(errorText(err), "error");
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}
