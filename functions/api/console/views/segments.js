// Segments: a builder for the whole DSL (AND/OR groups, NOT, every operator,
// attribute paths and the built-in fields), the JSON beside it (editable), and
// the live count, eligible count and masked sample as you edit.
import { api } from "../api.js";
import { h, replace, field, select, table, attempt, debounce, showNotice, confirmAction, when } from "../ui.js";

const OPERATORS = [
  "equals", "not_equals", "in", "not_in", "contains", "starts_with",
  "gt", "gte", "lt", "lte", "exists", "not_exists", "before", "after", "within_last_days",
];
const BUILT_INS = ["consent_state", "country", "created_at", "timezone"];
const NO_VALUE = new Set(["exists", "not_exists"]);
const LIST_VALUE = new Set(["in", "not_in"]);

const blank = () => ({ attribute: "", operator: "equals", value: "" });

// A typed value from the text box: numbers and true/false stay typed unless quoted.
function typed(text) {
  const t = text.trim();
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (t === "true" || t === "false") return t === "true";
  if (/^".*"$/.test(t)) return t.slice(1, -1);
  return text;
}

function valueText(value) {
  if (Array.isArray(value)) return value.map(valueText).join(", ");
  if (value === undefined || value === null) return "";
  return String(value);
}

function conditionEditor(node, onChange) {
  const attribute = h("input", { type: "text", value: node.attribute || "", list: "builtin-fields", placeholder: "city or consent_state" });
  const operator = select(OPERATORS, node.operator);
  const value = h("input", { type: "text", value: valueText(node.value) });
  const valueField = field("Value", value, "lists: a, b, c");
  const sync = () => {
    node.attribute = attribute.value.trim();
    node.operator = operator.value;
    valueField.hidden = NO_VALUE.has(node.operator);
    if (NO_VALUE.has(node.operator)) delete node.value;
    else if (LIST_VALUE.has(node.operator)) node.value = value.value.split(",").map((v) => typed(v.trim())).filter((v) => v !== "");
    else node.value = typed(value.value);
    onChange();
  };
  valueField.hidden = NO_VALUE.has(node.operator);
  for (const el of [attribute, value]) el.addEventListener("input", sync);
  operator.addEventListener("change", sync);
  return h("div", { class: "condition" }, field("Field", attribute), field("Operator", operator), valueField);
}

// Renders `node` (inside `parent` at `index`, or the root) and its children.
function nodeEditor(state, node, replaceSelf, remove) {
  const onChange = () => state.changed();
  const tools = [];
  tools.push(h("button", { type: "button", class: "small", onclick: () => { replaceSelf({ not: node }); state.redraw(); } }, "NOT (negate)"));
  if (remove) tools.push(h("button", { type: "button", class: "small", onclick: () => { remove(); state.redraw(); } }, "Remove"));
  if ("not" in node) {
    return h(
      "div",
      { class: "node not" },
      h("div", { class: "node-head" }, h("strong", {}, "NOT"),
        h("button", { type: "button", class: "small", onclick: () => { replaceSelf(node.not); state.redraw(); } }, "Drop NOT"),
        remove ? h("button", { type: "button", class: "small", onclick: () => { remove(); state.redraw(); } }, "Remove") : null),
      nodeEditor(state, node.not, (n) => { node.not = n; }, null),
    );
  }
  if ("logic" in node) {
    const logic = select(["AND", "OR"], node.logic, { "aria-label": "Combine conditions with" });
    logic.addEventListener("change", () => { node.logic = logic.value; onChange(); });
    const children = node.conditions.map((child, i) =>
      nodeEditor(state, child, (n) => { node.conditions[i] = n; }, node.conditions.length > 1 ? () => node.conditions.splice(i, 1) : null),
    );
    return h(
      "fieldset",
      { class: "node group" },
      h("legend", {}, "Group"),
      h("div", { class: "node-head" }, logic, ...tools),
      children,
      h("div", { class: "node-actions" },
        h("button", { type: "button", class: "small", onclick: () => { node.conditions.push(blank()); state.redraw(); } }, "+ Condition"),
        h("button", { type: "button", class: "small", onclick: () => { node.conditions.push({ logic: "AND", conditions: [blank()] }); state.redraw(); } }, "+ Group")),
    );
  }
  return h("div", { class: "node" }, conditionEditor(node, onChange), h("div", { class: "node-head" }, ...tools));
}

export async function render(main) {
  const state = { id: null, definition: { logic: "AND", conditions: [blank()] } };
  const name = h("input", { type: "text", required: true, maxlength: 200 });
  const builder = h("div", { id: "builder" });
  const json = h("textarea", { rows: 16, spellcheck: "false", class: "code" });
  const jsonStatus = h("p", { class: "hint", role: "status" });
  const preview = h("section", { id: "segment-preview", "aria-live": "polite", "aria-label": "Live preview" });
  const list = h("div");

  const runPreview = debounce(async () => {
    try {
      const result = await api("POST", "/v1/segments/preview", { json: { definition: state.definition } });
      replace(
        preview,
        h("p", { class: "stat" }, h("span", { id: "segment-count" }, String(result.count)), " match · ",
          h("span", { id: "segment-eligible" }, String(result.eligible)), " eligible (OPT_IN)"),
        table("Sample (masked)", ["phone", "consent"], result.sample.map((s) => [s.phone, s.consent_state]), { empty: "nobody matches." }),
      );
    } catch (error) {
      replace(preview, h("p", { class: "error-text" }, error.message));
    }
  }, 400);
  state.changed = () => {
    json.value = JSON.stringify(state.definition, null, 2);
    jsonStatus.textContent = "";
    runPreview();
  };
  state.redraw = () => {
    replace(builder, nodeEditor(state, state.definition, (n) => { state.definition = n; }, null));
    state.changed();
  };
  json.addEventListener("input", () => {
    try {
      state.definition = JSON.parse(json.value);
      jsonStatus.textContent = "";
      replace(builder, nodeEditor(state, state.definition, (n) => { state.definition = n; }, null));
      runPreview();
    } catch (error) {
      jsonStatus.textContent = "Not valid JSON yet: " + error.message;
    }
  });

  const load = (segment) => {
    state.id = segment ? segment.id : null;
    name.value = segment ? segment.name : "";
    state.definition = segment ? segment.definition : { logic: "AND", conditions: [blank()] };
    heading.textContent = segment ? `Edit segment ${segment.name}` : "New segment";
    state.redraw();
  };
  const refreshList = async () => {
    const page = await attempt(() => api("GET", "/v1/segments", { query: { limit: 200 } }));
    if (!page) return;
    replace(list, table("Segments", ["name", "updated", ""], page.items.map((s) => [
      h("button", { type: "button", class: "link", onclick: () => load(s) }, s.name),
      when(s.updated_at),
      h("button", { type: "button", class: "small danger", onclick: async () => {
        if (!(await confirmAction(`Delete segment ${s.name}?`, "Delete segment"))) return;
        if (await attempt(() => api("DELETE", "/v1/segments/" + encodeURIComponent(s.id)).then(() => true))) {
          showNotice(`Segment ${s.name} deleted.`);
          if (state.id === s.id) load(null);
          refreshList();
        }
      } }, "Delete…"),
    ]), { empty: "none saved yet." }));
  };
  const save = h("form", {
    class: "inline",
    onsubmit: async (event) => {
      event.preventDefault();
      const body = { name: name.value.trim(), definition: state.definition };
      const saved = await attempt(() =>
        state.id ? api("PUT", "/v1/segments/" + encodeURIComponent(state.id), { json: body }) : api("POST", "/v1/segments", { json: body }),
      );
      if (saved) {
        state.id = saved.id;
        heading.textContent = `Edit segment ${saved.name}`;
        showNotice(`Segment ${saved.name} saved.`);
        refreshList();
      }
    },
  }, field("Segment name", name), h("button", { type: "submit" }, "Save segment"),
  h("button", { type: "button", onclick: () => load(null) }, "New"));
  const heading = h("h2", {}, "New segment");

  replace(
    main,
    h("h1", {}, "Segments"),
    h("datalist", { id: "builtin-fields" }, BUILT_INS.map((f) => h("option", { value: f }))),
    h("div", { class: "columns" },
      h("div", {}, heading, save, builder),
      h("div", {}, preview, field("Definition (JSON)", json), jsonStatus, list)),
  );
  load(null);
  refreshList();
}
