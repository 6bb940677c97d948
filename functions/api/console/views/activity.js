// Inbound replies (phones masked, with their classification) and recent
// events with the messages each caused. Refreshed every 10 s while visible.
import { api } from "../api.js";
import { h, replace, table, when, badge, attempt, poll } from "../ui.js";

const REFRESH_MS = 10000;

// The newest page, refreshed while visible, and older pages on request.
function livePage(url, rows, olderLabel) {
  const list = h("div");
  const older = h("div");
  let token = null;
  const more = h("button", { type: "button", hidden: true, onclick: async () => {
    const page = await attempt(() => api("GET", url, { query: { limit: 50, page_token: token } }));
    if (!page) return;
    token = page.next_page_token;
    more.hidden = !token;
    older.append(rows(page.items));
  } }, olderLabel);
  poll(async () => {
    const page = await api("GET", url, { query: { limit: 50 } });
    replace(list, rows(page.items));
    if (!older.childElementCount) {
      token = page.next_page_token;
      more.hidden = !token;
    }
  }, REFRESH_MS);
  return h("div", {}, list, older, more);
}

export async function renderInbound(main) {
  const rows = (items) => table(null, ["received", "from", "classification", "text"], items.map((m) => [
    when(m.received_at), m.phone || "—", badge(m.classification), m.body,
  ]), { empty: "No inbound messages yet." });
  replace(main, h("h1", {}, "Inbound"), h("p", { class: "muted" }, "Replies to your senders, newest first. Phone numbers are masked."),
    h("div", { id: "inbound-list" }, livePage("/v1/inbound", rows, "Older replies")));
}

async function showEvent(box, eventId) {
  const e = await attempt(() => api("GET", "/v1/events/" + encodeURIComponent(eventId)));
  if (!e) return;
  replace(box,
    h("h2", {}, "Event ", h("code", {}, e.event_id)),
    h("p", { class: "muted" }, `${e.type} · ${e.status} · occurred ${when(e.occurred_at)} · routed ${when(e.routed_at)}`),
    h("pre", { class: "code" }, JSON.stringify(e.properties, null, 2)),
    table("Messages it caused", ["message", "campaign", "status", "skip reason"], e.messages.map((m) => [
      h("a", { href: "#/messages/" + encodeURIComponent(m.id) }, m.id),
      h("a", { href: "#/campaigns/" + encodeURIComponent(m.campaign_id) }, m.campaign_id),
      badge(m.status), m.skip_reason || "—",
    ]), { empty: "none." }),
    table("Campaigns that did not take it", ["campaign", "reason"], e.not_matched.map((n) => [n.campaign_id, n.reason]), { empty: "none." }));
  box.focus();
}

export async function renderEvents(main) {
  const detail = h("section", { id: "event-detail", tabindex: "-1", "aria-live": "polite" });
  const rows = (items) => table(null, ["received", "type", "phone", "status", "messages"], items.map((e) => [
    when(e.received_at),
    h("button", { type: "button", class: "link", onclick: () => showEvent(detail, e.event_id) }, e.type || e.event_id),
    e.phone || "—", e.status || "received", String(e.matched.length),
  ]), { empty: "No events yet." });
  replace(main, h("h1", {}, "Events"), h("p", { class: "muted" }, "Events posted to POST /v1/events, newest first. Choose one to see the messages it caused."),
    h("div", { class: "columns" }, h("div", { id: "event-list" }, livePage("/v1/events", rows, "Older events")), detail));
}
