// Campaigns: list with status filters; create and edit; the dry run before
// launch; launch now or schedule; pause, resume and cancel (asked first); the
// live view (counts per status over time, throughput, failures per code,
// skips per reason, opt-outs); the message list and one message's trail.
import { api } from "../api.js";
import {
  h, replace, field, select, table, pairs, when, badge, attempt, confirmAction,
  showNotice, poll, chart, updateChart, stopAll,
} from "../ui.js";

const STATUSES = ["DRAFT", "SCHEDULED", "RUNNING", "PAUSED", "ACTIVE", "COMPLETED", "CANCELLED", "FAILED"];
const MESSAGE_STATUSES = ["QUEUED", "SENDING", "SENT", "DELIVERED", "READ", "UNDELIVERED", "FAILED", "SKIPPED"];
const FINAL = new Set(["COMPLETED", "CANCELLED", "FAILED"]);
const SUMMARY_MS = 5000; // a running campaign's summary is a snapshot at most 5 s old
const path = (id) => "/v1/campaigns/" + encodeURIComponent(id);

export async function renderList(main) {
  const status = select([["", "all"], ...STATUSES], "");
  const box = h("div");
  let token = null;
  const load = async (more) => {
    const page = await attempt(() => api("GET", "/v1/campaigns", { query: { status: status.value, limit: 50, page_token: more ? token : null } }));
    if (!page) return;
    token = page.next_page_token;
    const rows = page.items.map((c) => [
      h("a", { href: "#/campaigns/" + encodeURIComponent(c.id) }, c.name),
      badge(c.status),
      c.trigger ? `on ${c.trigger.event}` : "broadcast",
      String(c.rate_limit_mps) + "/s",
      when(c.schedule_at || c.launched_at || c.created_at),
    ]);
    const t = table(null, ["name", "status", "kind", "rate", "when"], rows, { empty: "No campaigns." });
    if (more) box.append(t);
    else replace(box, t);
    moreButton.hidden = !token;
  };
  const moreButton = h("button", { type: "button", hidden: true, onclick: () => load(true) }, "More campaigns");
  status.addEventListener("change", () => load(false));
  replace(main, h("h1", {}, "Campaigns"),
    h("div", { class: "inline" }, field("Status", status), h("a", { class: "button", href: "#/campaigns/new" }, "New campaign")),
    box, moreButton);
  load(false);
}

async function options(kind) {
  const page = await api("GET", "/v1/" + kind, { query: { limit: 500 } });
  return page.items.map((item) => [item.id, item.name]);
}

function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

export async function renderEditor(main, id) {
  const existing = id ? await api("GET", path(id)) : null;
  const [templates, segments] = await Promise.all([options("templates"), options("segments")]);
  const c = existing || { rate_limit_mps: 10, quiet_hours: "default" };
  const name = h("input", { type: "text", required: true, value: c.name || "" });
  const template = select([["", "— choose —"], ...templates], c.template_id || "", { required: true });
  const kind = select([["segment", "a segment (broadcast)"], ["trigger", "an event (triggered)"]], c.trigger ? "trigger" : "segment");
  const segment = select([["", "— choose —"], ...segments], c.segment_id || "");
  const triggerEvent = h("input", { type: "text", value: c.trigger ? c.trigger.event : "", placeholder: "order_shipped" });
  const triggerWhere = h("textarea", { rows: 3, class: "code" }, c.trigger && c.trigger.where ? JSON.stringify(c.trigger.where) : "");
  const rate = h("input", { type: "number", min: "0.1", max: "1000", step: "0.1", value: String(c.rate_limit_mps) });
  const quiet = select([["default", "the default window"], ["none", "none"], ["custom", "custom"]],
    c.quiet_hours === "default" || c.quiet_hours === undefined ? "default" : c.quiet_hours ? "custom" : "none");
  const quietStart = h("input", { type: "time", value: (c.quiet_hours && c.quiet_hours.start) || "21:00" });
  const quietEnd = h("input", { type: "time", value: (c.quiet_hours && c.quiet_hours.end) || "08:00" });
  const timezone = h("input", { type: "text", value: c.default_timezone || "", placeholder: "America/New_York" });
  const capMax = h("input", { type: "number", min: "1", value: c.frequency_cap ? String(c.frequency_cap.max_messages) : "" });
  const capHours = h("input", { type: "number", min: "1", value: c.frequency_cap ? String(c.frequency_cap.per_hours) : "" });
  const senderKind = select([["", "the configured default"], ["messaging_service_sid", "Messaging Service SID"], ["from", "From number"]],
    c.sender ? (c.sender.messaging_service_sid ? "messaging_service_sid" : "from") : "");
  const senderValue = h("input", { type: "text", value: c.sender ? c.sender.messaging_service_sid || c.sender.from || "" : "" });
  const segmentField = field("Segment", segment);
  const triggerBox = h("div", {}, field("Event type", triggerEvent), field("Only events where (DSL on properties, JSON)", triggerWhere));
  const customQuiet = h("div", { class: "inline" }, field("Quiet from", quietStart), field("until", quietEnd));
  const sync = () => {
    segmentField.hidden = kind.value !== "segment";
    triggerBox.hidden = kind.value !== "trigger";
    customQuiet.hidden = quiet.value !== "custom";
  };
  for (const el of [kind, quiet]) el.addEventListener("change", sync);
  sync();
  if (existing) kind.disabled = true; // the API does not change a campaign's kind

  const settings = () => {
    const body = {
      name: name.value.trim(),
      template_id: template.value,
      rate_limit_mps: Number(rate.value),
      quiet_hours: quiet.value === "default" ? "default" : quiet.value === "none" ? null : { start: quietStart.value, end: quietEnd.value },
      default_timezone: timezone.value.trim() || null,
      frequency_cap: capMax.value && capHours.value ? { max_messages: Number(capMax.value), per_hours: Number(capHours.value) } : null,
      sender: senderKind.value && senderValue.value.trim() ? { [senderKind.value]: senderValue.value.trim() } : null,
    };
    if (kind.value === "segment") body.segment_id = segment.value || null;
    else if (!existing) body.trigger = { event: triggerEvent.value.trim(), ...(triggerWhere.value.trim() ? { where: JSON.parse(triggerWhere.value) } : {}) };
    return body;
  };
  const form = h("form", {
    class: "card",
    onsubmit: async (event) => {
      event.preventDefault();
      let body;
      try { body = settings(); } catch (error) { return attempt(() => { throw new Error("The trigger condition is not valid JSON: " + error.message); }); }
      const saved = await attempt(() => existing ? api("PATCH", path(existing.id), { json: body }) : api("POST", "/v1/campaigns", { json: body }));
      if (saved) location.hash = "#/campaigns/" + encodeURIComponent(saved.id);
    },
  },
  field("Campaign name", name), field("Template", template), field("Send to", kind), segmentField, triggerBox,
  field("Rate (messages per second)", rate), field("Quiet hours", quiet), customQuiet,
  field("Default time zone", timezone, "for recipients without one"),
  h("div", { class: "inline" }, field("Frequency cap: at most", capMax), field("messages per hours", capHours)),
  h("div", { class: "inline" }, field("Sender", senderKind), field("Sender value", senderValue)),
  h("div", { class: "actions" }, h("button", { type: "submit" }, existing ? "Save changes" : "Create campaign"),
    h("a", { class: "button secondary", href: existing ? "#/campaigns/" + encodeURIComponent(existing.id) : "#/campaigns" }, "Back")));
  replace(main, h("h1", {}, existing ? `Edit ${existing.name}` : "New campaign"), form);
}

function lifecycleButtons(campaign, refresh) {
  const act = (action, question, label) => async () => {
    if (question && !(await confirmAction(question, label))) return;
    const done = await attempt(() => api("POST", `${path(campaign.id)}/${action}`));
    if (done) showNotice(`${campaign.name}: ${done.status}`);
    refresh(); // after an error too: show the state the API holds now
  };
  const buttons = [];
  const s = campaign.status;
  if (s === "DRAFT" || s === "SCHEDULED") buttons.push(h("a", { class: "button secondary", href: `#/campaigns/${encodeURIComponent(campaign.id)}/edit` }, "Edit"));
  if (["RUNNING", "SCHEDULED", "ACTIVE"].includes(s)) buttons.push(h("button", { type: "button", onclick: act("pause", `Pause ${campaign.name}? Unsent messages are held until you resume.`, "Pause campaign") }, "Pause…"));
  if (s === "PAUSED") buttons.push(h("button", { type: "button", onclick: act("resume", null) }, "Resume"));
  if (!FINAL.has(s)) buttons.push(h("button", { type: "button", class: "danger", onclick: act("cancel", `Cancel ${campaign.name}? Queued messages will be skipped. This cannot be undone.`, "Cancel campaign") }, "Cancel campaign…"));
  return buttons;
}

function launchPanel(campaign, refresh) {
  const report = h("div", { id: "dry-run", "aria-live": "polite" });
  const when_ = h("input", { type: "datetime-local" });
  let lastDryRun = null;
  const launch = async (scheduleAt) => {
    // The dry run is shown before any launch: run it now if the operator has not.
    if (!campaign.trigger && !lastDryRun) await dryRun();
    const audience = lastDryRun
      ? ` ${lastDryRun.eligible} of ${lastDryRun.targeted} recipients are eligible (about ${lastDryRun.estimated_duration}).`
      : "";
    const question = scheduleAt
      ? `Schedule ${campaign.name} for ${when(scheduleAt)}?${audience}`
      : campaign.trigger
        ? `Activate ${campaign.name}? Each ${campaign.trigger.event} event from now on sends a message.`
        : `Launch ${campaign.name} now? Messages start going out at ${campaign.rate_limit_mps}/s.${audience}`;
    const verb = scheduleAt ? "Schedule" : campaign.trigger ? "Activate" : "Launch now";
    if (!(await confirmAction(question, verb))) return;
    const done = await attempt(() => api("POST", path(campaign.id) + "/launch", { json: scheduleAt ? { schedule_at: scheduleAt } : {} }));
    if (done) showNotice(`${campaign.name}: ${done.status}`);
    refresh(); // after an error too: show the state the API holds now
  };
  const dryRun = async () => {
    const r = await attempt(() => api("POST", path(campaign.id) + "/dry-run"));
    if (!r) return;
    lastDryRun = r;
    replace(report,
      h("dl", { class: "facts" },
        h("dt", {}, "Targeted"), h("dd", { id: "dry-targeted" }, String(r.targeted)),
        h("dt", {}, "Eligible"), h("dd", { id: "dry-eligible" }, String(r.eligible)),
        h("dt", {}, "Total segments"), h("dd", {}, String(r.total_segments)),
        h("dt", {}, "Deferred by quiet hours now"), h("dd", {}, String(r.quiet_hours_deferrals_now)),
        h("dt", {}, "Estimated duration"), h("dd", {}, `${r.estimated_duration} at ${r.rate_limit_mps}/s`)),
      pairs("Skips by reason", r.skips));
  };
  return h("section", { class: "card", "aria-labelledby": "launch-title" },
    h("h2", { id: "launch-title" }, "Dry run and launch"),
    h("div", { class: "actions" },
      campaign.trigger ? null : h("button", { type: "button", onclick: dryRun }, "Dry run"),
      h("button", { type: "button", class: "primary", onclick: () => launch(null) }, campaign.trigger ? "Activate" : "Launch now")),
    campaign.trigger ? null : h("div", { class: "inline" }, field("Schedule for", when_),
      h("button", { type: "button", onclick: () => when_.value ? launch(new Date(when_.value).toISOString()) : when_.focus() }, "Schedule")),
    report);
}

function liveView(campaign) {
  const history = []; // [time, counts] per poll, for the chart over time
  const over = chart("Messages per status over time", "line", [], [], {
    plugins: { legend: { display: true } },
    scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
  });
  const facts = h("div", { id: "live-facts" });
  const section = h("section", { class: "card", "aria-labelledby": "live-title" }, h("h2", { id: "live-title" }, "Progress"), over, facts);
  const update = (s) => {
    history.push([new Date(s.computed_at).toLocaleTimeString(), s.counts]);
    if (history.length > 120) history.shift();
    const statuses = MESSAGE_STATUSES.filter((st) => history.some(([, counts]) => counts[st]));
    updateChart(over, history.map(([t]) => t), statuses.map((st) => ({ label: st, data: history.map(([, counts]) => counts[st] || 0) })));
    replace(facts,
      h("dl", { class: "facts" },
        h("dt", {}, "Status"), h("dd", { id: "live-status" }, s.status),
        h("dt", {}, "Planned"), h("dd", {}, String(s.planned ?? "—")),
        h("dt", {}, "Targeted"), h("dd", {}, String(s.targeted)),
        h("dt", {}, "Sent"), h("dd", {}, String(s.sent)),
        h("dt", {}, "Delivered"), h("dd", { id: "live-delivered" }, String(s.delivered)),
        h("dt", {}, "Delivery rate"), h("dd", {}, s.delivery_rate == null ? "—" : (s.delivery_rate * 100).toFixed(1) + " %"),
        h("dt", {}, "Throughput"), h("dd", {}, s.throughput_per_minute == null ? "—" : s.throughput_per_minute.toFixed(1) + " / min"),
        h("dt", {}, "Opt-outs after send"), h("dd", {}, String(s.opt_outs.count)),
        h("dt", {}, "Segments sent"), h("dd", {}, String(s.total_segments)),
        h("dt", {}, "First / last send"), h("dd", {}, `${when(s.first_sent_at)} / ${when(s.last_sent_at)}`)),
      pairs("Messages per status", s.counts),
      table("Failures per error code", ["code", "meaning", "count"], s.failures.map((f) => [f.code, f.meaning || "—", String(f.count)]), { empty: "none." }),
      pairs("Skips per reason", s.skips));
  };
  return { section, update };
}

function messageList(campaign) {
  const status = select([["", "any"], ...MESSAGE_STATUSES], "");
  const phone = h("input", { type: "tel", placeholder: "+14155550100" });
  const box = h("div", { id: "message-list" });
  let token = null;
  const load = async (more) => {
    const page = await attempt(() => api("GET", path(campaign.id) + "/messages", {
      query: { status: status.value, phone: phone.value.trim(), limit: 25, page_token: more ? token : null },
    }));
    if (!page) return;
    token = page.next_page_token;
    const t = table(null, ["message", "phone", "status", "reason / error", "send at"], page.items.map((m) => [
      h("a", { href: "#/messages/" + encodeURIComponent(m.id) }, m.id),
      m.phone, badge(m.status), m.skip_reason || m.error_code || "—", when(m.send_at),
    ]), { empty: "No messages match." });
    if (more) box.append(t);
    else replace(box, t);
    more_.hidden = !token;
  };
  const more_ = h("button", { type: "button", hidden: true, onclick: () => load(true) }, "More messages");
  const form = h("form", { class: "inline", "aria-label": "Filter messages", onsubmit: (e) => { e.preventDefault(); load(false); } },
    field("Message status", status), field("Recipient phone", phone), h("button", { type: "submit" }, "Filter"));
  load(false);
  const section = h("section", { class: "card", "aria-labelledby": "messages-title" }, h("h2", { id: "messages-title" }, "Messages"), form, box, more_);
  return { section, reload: () => load(false) };
}

export async function renderDetail(main, id) {
  const campaign = await api("GET", path(id));
  const refresh = () => {
    stopAll(); // this screen's polls; the new render starts its own
    return renderDetail(main, id);
  };
  const kind = campaign.trigger ? `Triggered by ${campaign.trigger.event}` : `Segment ${campaign.segment_id}`;
  const quiet = campaign.quiet_hours === "default" ? "default" : campaign.quiet_hours ? `${campaign.quiet_hours.start}–${campaign.quiet_hours.end}` : "none";
  const parts = [
    h("h1", {}, campaign.name, " ", h("span", { id: "campaign-status" }, badge(campaign.status))),
    h("p", { class: "muted" }, `${kind} · template ${campaign.template_id} · ${campaign.rate_limit_mps}/s · quiet hours ${quiet}` +
      (campaign.frequency_cap ? ` · at most ${campaign.frequency_cap.max_messages} per ${campaign.frequency_cap.per_hours} h` : "") +
      (campaign.schedule_at ? ` · scheduled ${when(campaign.schedule_at)}` : "") +
      (campaign.failure_reason ? ` · failed: ${campaign.failure_reason}` : "")),
    h("div", { class: "actions", id: "lifecycle" }, lifecycleButtons(campaign, refresh)),
  ];
  if (["DRAFT", "SCHEDULED"].includes(campaign.status)) parts.push(launchPanel(campaign, refresh));
  if (campaign.status !== "DRAFT") {
    const live = liveView(campaign);
    const messages = messageList(campaign);
    parts.push(live.section, messages.section);
    let last = campaign.status;
    poll(async () => {
      const summary = await api("GET", path(id) + "/summary");
      live.update(summary);
      if (summary.status !== last) {
        last = summary.status;
        replace(document.getElementById("campaign-status"), badge(summary.status));
        replace(document.getElementById("lifecycle"), lifecycleButtons({ ...campaign, status: summary.status }, refresh));
        messages.reload();
      }
      return !FINAL.has(summary.status); // one last update, then stop
    }, SUMMARY_MS);
  }
  replace(main, ...parts);
}

export async function renderMessage(main, id) {
  const m = await api("GET", "/v1/messages/" + encodeURIComponent(id));
  replace(main,
    h("h1", {}, "Message ", h("code", {}, m.id)),
    h("p", {}, h("a", { href: "#/campaigns/" + encodeURIComponent(m.campaign_id) }, "← campaign " + m.campaign_id)),
    h("dl", { class: "facts" },
      h("dt", {}, "Status"), h("dd", { id: "message-status" }, m.status),
      h("dt", {}, "To"), h("dd", {}, m.phone),
      h("dt", {}, "Channel"), h("dd", {}, m.channel),
      h("dt", {}, "Encoding / segments"), h("dd", {}, `${m.encoding} / ${m.segments}`),
      h("dt", {}, "Send at"), h("dd", {}, when(m.send_at)),
      h("dt", {}, "Provider SID"), h("dd", {}, m.provider_sid || "—"),
      h("dt", {}, "Skip reason"), h("dd", {}, m.skip_reason || "—"),
      h("dt", {}, "Error"), h("dd", {}, m.error_code ? `${m.error_code} ${m.error_message || ""}` : "—"),
      h("dt", {}, "Attempts"), h("dd", {}, String(m.attempts))),
    h("pre", { class: "bubble" }, m.body),
    table("Audit trail", ["when", "step", "outcome", "reason"], m.audit.map((a) => [when(a.at), a.step, a.outcome, a.reason || "—"])),
    table("Receipts (status callbacks, in arrival order)", ["status", "error", "message SID", "parameters"], m.receipts.map((r) => {
      const p = r.params || r;
      return [p.MessageStatus || "—", p.ErrorCode || "—", p.MessageSid || "—", h("code", {}, JSON.stringify(p))];
    }), { empty: "no delivery reports yet." }),
  );
}
