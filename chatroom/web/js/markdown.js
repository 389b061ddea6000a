// Message content is markdown (GFM). Raw HTML inside it is shown as text, not interpreted:
// `<script>` or `<img onerror=...>` in a message appears literally. The HTML that marked
// produces is then sanitised by DOMPurify anyway (defence in depth), and the page's CSP allows
// no inline script. Links open in a new tab without a referrer.

const { marked, DOMPurify } = window;

function escapeHtml(text) {
  return String(text)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

const md = new marked.Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    // Block and inline HTML: show it, do not run it.
    html(token) {
      const text = typeof token === "string" ? token : token.text;
      return escapeHtml(text);
    },
    // Images from elsewhere would be blocked by the page's CSP (and could track readers):
    // show them as links. Images from this server (or data: images) are displayed.
    image(token) {
      const href = String(token.href || "");
      const alt = token.text || href;
      if (href.startsWith("/") && !href.startsWith("//")) {
        return `<img src="${escapeHtml(href)}" alt="${escapeHtml(alt)}">`;
      }
      if (/^data:image\/(png|gif|jpeg|webp);/i.test(href)) {
        return `<img src="${escapeHtml(href)}" alt="${escapeHtml(alt)}">`;
      }
      return `<a href="${escapeHtml(href)}">${escapeHtml(alt)} (image)</a>`;
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option"],
  FORBID_ATTR: ["style", "class", "id"],
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

/** Markdown -> a sanitised DocumentFragment. */
export function renderMarkdown(source) {
  let html;
  try {
    html = md.parse(String(source || ""));
  } catch {
    const pre = document.createElement("pre");
    pre.textContent = String(source || "");
    const frag = document.createDocumentFragment();
    frag.append(pre);
    return frag;
  }
  return DOMPurify.sanitize(html, PURIFY);
}
