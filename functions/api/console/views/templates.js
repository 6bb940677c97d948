// Templates: an editor with the live render (for typed attributes or a stored
// contact, and an event for triggered campaigns), encoding, characters,
// segments and missing variables as you type; WhatsApp content templates.
import { api } from "../api.js";
import { h, replace, field, select, table, attempt, debounce, showNotice, confirmAction, when } from "../ui.js";

function parseJson(text, fallback) {
  if (!text.trim()) return fallback;
  return JSON.parse(text);
}

export async function render(main) {
  let currentId = null;
  const name = h("input", { type: "text", required: true, maxlength: 200 });
  const channel = select([["sms", "SMS"], ["whatsapp", "WhatsApp"]], "sms");
  const body = h("textarea", { rows: 6, class: "code", spellcheck: "false" });
  const contentSid = h("input", { type: "text", placeholder: "HX…", pattern: "HX[0-9a-fA-F]{32}" });
  const contentVars = h("textarea", { rows: 3, class: "code", placeholder: '{"1": "{{ name }}"}' });
  const whatsapp = h("fieldset", { hidden: true }, h("legend", {}, "WhatsApp content template"),
    field("Content SID", contentSid, "approved template; sent at any time"),
    field("Content variables (JSON)", contentVars, "placeholder number → Liquid"));
  const who = select([["attributes", "typed attributes"], ["phone", "a stored contact"]], "attributes");
  const attrs = h("textarea", { rows: 3, class: "code" }, '{"name": "Ann"}');
  const phone = h("input", { type: "tel", placeholder: "+14155550100" });
  const phoneField = field("Contact phone", phone);
  phoneField.hidden = true;
  const event = h("textarea", { rows: 3, class: "code", placeholder: '{"properties": {"order_id": "A1"}}' });
  const out = h("section", { id: "render", "aria-live": "polite", "aria-label": "Live render" });
  const heading = h("h2", {}, "New template");
  const list = h("div");

  const draft = () => {
    const t = { name: name.value.trim() || "draft", channel: channel.value, body: body.value };
    if (channel.value === "whatsapp" && contentSid.value.trim()) {
      t.content_sid = contentSid.value.trim();
      const vars = parseJson(contentVars.value, null);
      if (vars) t.content_variables = vars;
    }
    return t;
  };
  const renderNow = debounce(async () => {
    let request;
    try {
      request = { template: draft() };
      if (who.value === "phone") request.phone = phone.value.trim();
      else request.attributes = parseJson(attrs.value, {});
      const ev = parseJson(event.value, null);
      if (ev) request.event = ev;
    } catch (error) {
      return replace(out, h("p", { class: "error-text" }, "Not valid JSON: " + error.message));
    }
    try {
      const r = await api("POST", "/v1/templates/render", { json: request });
      replace(
        out,
        h("pre", { class: "bubble", id: "rendered-body" }, r.body),
        h("dl", { class: "facts" },
          h("dt", {}, "Encoding"), h("dd", { id: "render-encoding" }, r.encoding),
          h("dt", {}, "Characters"), h("dd", { id: "render-characters" }, String(r.characters)),
          h("dt", {}, "Segments"), h("dd", { id: "render-segments" }, String(r.segments)),
          h("dt", {}, "Missing variables"), h("dd", { id: "render-missing" }, r.missing_variables.length ? r.missing_variables.join(", ") : "none")),
        r.content_variables ? table("Content variables", ["placeholder", "value"], Object.entries(r.content_variables)) : null,
      );
    } catch (error) {
      replace(out, h("p", { class: "error-text" }, error.message));
    }
  }, 300);
  for (const el of [name, body, contentSid, contentVars, attrs, phone, event]) el.addEventListener("input", renderNow);
  channel.addEventListener("change", () => { whatsapp.hidden = channel.value !== "whatsapp"; renderNow(); });
  who.addEventListener("change", () => {
    phoneField.hidden = who.value !== "phone";
    attrsField.hidden = who.value === "phone";
    renderNow();
  });
  const attrsField = field("Attributes (JSON)", attrs);

  const load = (t) => {
    currentId = t ? t.id : null;
    name.value = t ? t.name : "";
    channel.value = t ? t.channel : "sms";
    body.value = t ? t.body : "";
    contentSid.value = (t && t.content_sid) || "";
    contentVars.value = t && t.content_variables ? JSON.stringify(t.content_variables) : "";
    whatsapp.hidden = channel.value !== "whatsapp";
    heading.textContent = t ? `Edit template ${t.name}` : "New template";
    renderNow();
  };
  const refreshList = async () => {
    const page = await attempt(() => api("GET", "/v1/templates", { query: { limit: 200 } }));
    if (!page) return;
    replace(list, table("Templates", ["name", "channel", "segments", "updated", ""], page.items.map((t) => [
      h("button", { type: "button", class: "link", onclick: () => load(t) }, t.name),
      t.channel, String(t.segments), when(t.updated_at),
      h("button", { type: "button", class: "small danger", onclick: async () => {
        if (!(await confirmAction(`Delete template ${t.name}?`, "Delete template"))) return;
        if (await attempt(() => api("DELETE", "/v1/templates/" + encodeURIComponent(t.id)).then(() => true))) {
          showNotice(`Template ${t.name} deleted.`);
          if (currentId === t.id) load(null);
          refreshList();
        }
      } }, "Delete…"),
    ]), { empty: "none saved yet." }));
  };
  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      let fields;
      try { fields = draft(); } catch (error) { return replace(out, h("p", { class: "error-text" }, error.message)); }
      const saved = await attempt(() =>
        currentId ? api("PUT", "/v1/templates/" + encodeURIComponent(currentId), { json: fields }) : api("POST", "/v1/templates", { json: fields }),
      );
      if (saved) {
        currentId = saved.id;
        heading.textContent = `Edit template ${saved.name}`;
        showNotice(`Template ${saved.name} saved (${saved.encoding}, ${saved.segments} segment(s)).`);
        refreshList();
      }
    },
  },
  field("Template name", name), field("Channel", channel), field("Body (Liquid)", body, 'e.g. Hi {{ name | default: "there" }}'), whatsapp,
  h("div", { class: "actions" }, h("button", { type: "submit" }, "Save template"), h("button", { type: "button", onclick: () => load(null) }, "New")));

  replace(
    main,
    h("h1", {}, "Templates"),
    h("div", { class: "columns" },
      h("div", {}, heading, form),
      h("div", {}, h("h2", {}, "Preview"), field("Render for", who), attrsField, phoneField,
        field("Event (JSON, triggered campaigns)", event), out, list)),
  );
  load(null);
  refreshList();
}
