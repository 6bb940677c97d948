// Contacts: find one by phone (its attributes, consent history, messages;
// consent change with a reason; erase), list by consent state, and import.
import { api, phonePath } from "../api.js";
import { h, replace, field, select, table, pairs, when, badge, attempt, confirmAction, showNotice, poll } from "../ui.js";

const IMPORT_POLL_MS = 1000; // one document read per poll
const TYPES = { csv: "text/csv", json: "application/json", ndjson: "application/x-ndjson", jsonl: "application/x-ndjson" };

export async function render(main) {
  const detail = h("section", { id: "contact", "aria-live": "polite" });
  const phone = h("input", { type: "search", inputmode: "tel", placeholder: "+14155550100", autocomplete: "off" });
  const search = h(
    "form",
    {
      class: "inline",
      role: "search",
      onsubmit: (event) => {
        event.preventDefault();
        if (phone.value.trim()) showContact(detail, phone.value.trim());
      },
    },
    field("Phone number", phone),
    h("button", { type: "submit" }, "Find"),
  );
  const listBox = h("section", { "aria-labelledby": "list-title" });
  const reloadList = contactList(listBox, detail);
  replace(
    main,
    h("h1", {}, "Contacts"),
    h("div", { class: "columns" },
      h("div", {}, search, detail),
      h("div", {}, importPanel(reloadList), listBox)),
  );
}

function contactList(box, detail) {
  const state = select([["", "any"], "OPT_IN", "OPT_OUT", "STOP"], "");
  const results = h("div");
  let token = null;
  const load = async (more) => {
    const page = await attempt(() =>
      api("GET", "/v1/users", { query: { consent_state: state.value, limit: 20, page_token: more ? token : null } }),
    );
    if (!page) return;
    token = page.next_page_token;
    const rows = page.items.map((user) => [
      h("button", { type: "button", class: "link", onclick: () => showContact(detail, user.phone) }, user.phone),
      badge(user.consent.state),
      when(user.created_at),
    ]);
    const list = table(null, ["phone", "consent", "created"], rows, { empty: "No contacts." });
    if (more) results.append(list);
    else replace(results, list);
    moreButton.hidden = !token;
  };
  const moreButton = h("button", { type: "button", hidden: true, onclick: () => load(true) }, "More contacts");
  state.addEventListener("change", () => load(false));
  replace(box, h("h2", { id: "list-title" }, "All contacts"), field("Consent state", state), results, moreButton);
  load(false);
  return () => load(false);
}

async function showContact(box, phone) {
  const user = await attempt(() => api("GET", "/v1/users/" + phonePath(phone)));
  if (!user) return replace(box);
  const path = "/v1/users/" + phonePath(user.phone);
  const [history, messages] = await Promise.all([
    attempt(() => api("GET", path + "/consent", { query: { limit: 50 } })),
    attempt(() => api("GET", path + "/messages", { query: { limit: 50 } })),
  ]);
  const state = select(["OPT_IN", "OPT_OUT", "STOP"], user.consent.state);
  const reason = h("input", { type: "text", required: true, maxlength: 500 });
  const consentForm = h(
    "form",
    {
      class: "inline",
      "aria-label": "Change consent",
      onsubmit: async (event) => {
        event.preventDefault();
        if (!reason.value.trim()) return reason.focus();
        const ok = await attempt(() =>
          api("PUT", path + "/consent", { json: { state: state.value, source: "console", evidence: reason.value.trim() } }),
        );
        if (ok) {
          showNotice(`Consent of ${user.phone} is now ${ok.consent.state}.`);
          showContact(box, user.phone);
        }
      },
    },
    field("New consent state", state),
    field("Reason", reason),
    h("button", { type: "submit" }, "Change consent"),
  );
  const erase = h(
    "button",
    {
      type: "button",
      class: "danger",
      onclick: async () => {
        const sure = await confirmAction(
          `Erase ${user.phone} everywhere (profile, consent history, messages, inbound, events)? This cannot be undone.`,
          "Erase contact",
        );
        if (!sure) return;
        const done = await attempt(() => api("DELETE", path).then(() => true));
        if (done) {
          showNotice(`${user.phone} was erased.`);
          replace(box);
        }
      },
    },
    "Erase contact…",
  );
  replace(
    box,
    h("h2", {}, user.phone, " ", badge(user.consent.state)),
    h("p", { class: "muted" }, `Created ${when(user.created_at)} · time zone ${user.timezone || "—"} · last inbound ${when(user.last_inbound_at)}`),
    pairs("Attributes", user.attributes),
    consentForm,
    table(
      "Consent history",
      ["when", "from", "to", "source", "evidence"],
      (history ? history.items : []).map((e) => [when(e.at), e.from || "—", e.to, e.source, e.evidence || "—"]),
    ),
    table(
      "Messages",
      ["created", "campaign", "status", "body"],
      (messages ? messages.items : []).map((m) => [
        when(m.created_at),
        h("a", { href: "#/campaigns/" + encodeURIComponent(m.campaign_id) }, m.campaign_id),
        h("a", { href: "#/messages/" + encodeURIComponent(m.id) }, badge(m.status)),
        m.body,
      ]),
    ),
    erase,
  );
}

function importPanel(onFinished) {
  const input = h("input", { type: "file", accept: ".csv,.json,.ndjson,.jsonl" });
  const progress = h("progress", { max: 1, "aria-label": "Import progress", hidden: true });
  const status = h("p", { role: "status", id: "import-status" });
  const report = h("div", { id: "import-report" });
  const drop = h(
    "div",
    { class: "drop", id: "drop-zone" },
    h("p", {}, "Drop a CSV, JSON or NDJSON file here, or choose one:"),
    field("Contacts file", input),
  );
  const start = (file) => {
    if (file) runImport(file, { progress, status, report, onFinished });
  };
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    start(event.dataTransfer.files[0]);
  });
  input.addEventListener("change", () => start(input.files[0]));
  return h("section", { class: "card", "aria-labelledby": "import-title" }, h("h2", { id: "import-title" }, "Import contacts"), drop, progress, status, report);
}

async function runImport(file, { progress, status, report, onFinished }) {
  const ext = file.name.split(".").pop().toLowerCase();
  const contentType = TYPES[ext] || file.type || "text/csv";
  replace(report);
  progress.hidden = false;
  progress.removeAttribute("value"); // indeterminate while uploading
  status.textContent = `Uploading ${file.name}…`;
  const first = await attempt(() => api("POST", "/v1/imports", { body: file, contentType }));
  if (!first) {
    progress.hidden = true;
    status.textContent = "The import was refused.";
    return;
  }
  // Imports may finish in the request (201) or run on (202 RUNNING): poll the
  // report until it is no longer RUNNING either way.
  const show = (r) => {
    const planned = r.chunks_planned || 0;
    if (planned) {
      progress.max = planned;
      progress.value = r.chunks_done || 0;
    }
    status.textContent = `Import ${r.id}: ${r.status}`;
    if (r.status === "RUNNING") return true;
    progress.max = 1;
    progress.value = 1;
    renderReport(report, r);
    onFinished();
    return false;
  };
  if (show(first)) {
    poll(async () => show(await api("GET", "/v1/imports/" + encodeURIComponent(first.id))), IMPORT_POLL_MS);
  }
}

function renderReport(box, r) {
  const counts = {};
  for (const key of ["total", "created", "updated", "duplicates", "invalid", "failed"]) if (key in r) counts[key] = r[key];
  replace(
    box,
    pairs("Import report", counts),
    table("Rows not imported", ["row", "phone", "error"], (r.errors || []).map((e) => [String(e.row), e.phone || "—", e.error]), {
      empty: "every row imported.",
    }),
    r.errors_omitted ? h("p", {}, `${r.errors_omitted} more errors not shown.`) : null,
  );
}
