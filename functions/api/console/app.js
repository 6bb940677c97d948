// The operator console: sign-in, a hash router and the screens.
import { api, session, whenUnauthorized } from "./api.js";
import { h, replace, field, clearBanner, showError, stopAll } from "./ui.js";
import * as dashboard from "./views/dashboard.js";
import * as contacts from "./views/contacts.js";
import * as segments from "./views/segments.js";
import * as templates from "./views/templates.js";
import * as campaigns from "./views/campaigns.js";
import * as activity from "./views/activity.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");

const routes = [
  [/^#\/dashboard$/, (m) => dashboard.render(main)],
  [/^#\/contacts$/, () => contacts.render(main)],
  [/^#\/segments$/, () => segments.render(main)],
  [/^#\/templates$/, () => templates.render(main)],
  [/^#\/campaigns$/, () => campaigns.renderList(main)],
  [/^#\/campaigns\/new$/, () => campaigns.renderEditor(main, null)],
  [/^#\/campaigns\/([^/]+)\/edit$/, (m) => campaigns.renderEditor(main, decodeURIComponent(m[1]))],
  [/^#\/campaigns\/([^/]+)$/, (m) => campaigns.renderDetail(main, decodeURIComponent(m[1]))],
  [/^#\/messages\/([^/]+)$/, (m) => campaigns.renderMessage(main, decodeURIComponent(m[1]))],
  [/^#\/inbound$/, () => activity.renderInbound(main)],
  [/^#\/events$/, () => activity.renderEvents(main)],
];

function signIn(message) {
  stopAll();
  nav.hidden = true;
  const key = h("input", { type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const status = h("p", { id: "signin-status", role: "status", class: message ? "error-text" : "" }, message || "");
  const form = h(
    "form",
    {
      class: "card signin",
      "aria-labelledby": "signin-title",
      onsubmit: async (event) => {
        event.preventDefault();
        const value = key.value.trim();
        if (!value) return;
        status.className = "";
        status.textContent = "Checking the key…";
        try {
          // The cheapest authenticated read: one campaign id.
          await api("GET", "/v1/campaigns", { query: { limit: 1 }, key: value });
        } catch (error) {
          status.className = "error-text";
          status.textContent =
            error.status === 401
              ? "That API key was not accepted. Check it and try again."
              : "Could not sign in: " + error.message;
          key.focus();
          return;
        }
        session.set(value);
        if (!location.hash || location.hash === "#/signin") location.hash = "#/dashboard";
        else route();
      },
    },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", {}, "Enter your API key. It stays in this browser tab only and is forgotten when the tab closes."),
    field("API key", key),
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  replace(main, form);
  key.focus();
}

function highlight() {
  const section = (location.hash.split("/")[1] || "").toLowerCase();
  for (const link of nav.querySelectorAll("a")) {
    const current = link.getAttribute("href") === "#/" + section;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  stopAll();
  clearBanner();
  if (!session.key) return signIn();
  nav.hidden = false;
  if (!location.hash || location.hash === "#/" || location.hash === "#/signin") {
    location.hash = "#/dashboard";
    return;
  }
  highlight();
  for (const [pattern, view] of routes) {
    const match = location.hash.match(pattern);
    if (match) {
      replace(main);
      try {
        await view(match);
      } catch (error) {
        showError(error);
      }
      main.focus({ preventScroll: true });
      return;
    }
  }
  replace(main, h("h1", {}, "Not found"), h("p", {}, "No screen at " + location.hash + "."));
}

whenUnauthorized(() => {
  session.clear();
  signIn("Your API key is no longer accepted. Sign in again.");
});
document.getElementById("sign-out").addEventListener("click", () => {
  session.clear();
  location.hash = "#/signin";
  signIn();
});
window.addEventListener("hashchange", route);
route();
