// Small DOM helpers. Text always goes in as text (never innerHTML), so data
// from the API cannot become markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
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

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let fieldSeq = 0;
// A labelled control: <label for=id>text</label><control id=id>.
export function field(label, control, hint) {
  if (!control.id) control.id = "f" + ++fieldSeq;
  const parts = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hintEl = h("small", { id: control.id + "-hint", class: "hint" }, hint);
    control.setAttribute("aria-describedby", hintEl.id);
    parts.push(hintEl);
  }
  return h("div", { class: "field" }, parts);
}

export function select(options, value, attrs = {}) {
  const el = h("select", attrs);
  for (const option of options) {
    const [v, text] = Array.isArray(option) ? option : [option, option];
    el.append(h("option", { value: v, selected: v === value }, text));
  }
  return el;
}

export function table(caption, columns, rows, { empty = "Nothing yet." } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, caption ? `${caption}: ${empty}` : empty);
  return h(
    "div",
    // Focusable, so a table wider than a phone can be scrolled by keyboard.
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption || columns.filter(Boolean).join(", ") },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell) => h("td", {}, cell))))),
    ),
  );
}

export function pairs(caption, object) {
  return table(caption, ["", ""], Object.entries(object || {}).map(([k, v]) => [k, String(v)]), {
    empty: "none",
  });
}

export function when(value) {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" }).format(date);
}

export function badge(status) {
  return h("span", { class: "badge s-" + String(status).toLowerCase() }, status);
}

// ---------------------------------------------------------------- messages

export function showError(error) {
  const banner = document.getElementById("banner");
  banner.className = "error";
  replace(banner, error && error.message ? error.message : String(error));
  banner.hidden = false;
}

export function showNotice(text) {
  const banner = document.getElementById("banner");
  banner.className = "notice";
  replace(banner, text);
  banner.hidden = false;
}

export function clearBanner() {
  const banner = document.getElementById("banner");
  banner.hidden = true;
  banner.replaceChildren();
}

// Run an action; an API error is shown as the API's message, never swallowed.
export async function attempt(action) {
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  }
}

// Every destructive action asks first. Resolves true only on "Confirm".
export function confirmAction(text, confirmLabel = "Confirm") {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  const yes = document.getElementById("confirm-yes");
  const no = document.getElementById("confirm-no");
  yes.textContent = confirmLabel;
  return new Promise((resolve) => {
    const finish = (answer) => {
      yes.removeEventListener("click", onYes);
      no.removeEventListener("click", onNo);
      dialog.removeEventListener("cancel", onNo);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onYes = () => finish(true);
    const onNo = () => finish(false);
    yes.addEventListener("click", onYes);
    no.addEventListener("click", onNo);
    dialog.addEventListener("cancel", onNo);
    dialog.showModal();
    no.focus();
  });
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// ---------------------------------------------------------------- polling

// Each screen registers what it starts; leaving the screen stops it all.
const running = new Set();

export function stopAll() {
  for (const stop of running) stop();
  running.clear();
}

// Poll `task` every `intervalMs` (at least 1 s), not while the tab is hidden,
// backing off (up to 8×) while it fails. `task` returns false to stop.
export function poll(task, intervalMs) {
  let timer = null;
  let stopped = false;
  let failures = 0;
  const schedule = () => {
    if (stopped) return;
    clearTimeout(timer);
    if (document.hidden) return; // resumed by visibilitychange
    const wait = Math.max(1000, intervalMs) * Math.min(8, 2 ** failures);
    timer = setTimeout(tick, wait);
  };
  const tick = async () => {
    if (stopped || document.hidden) return;
    try {
      const more = await task();
      failures = 0;
      if (more === false) return stop();
    } catch (error) {
      failures += 1;
      showError(error);
    }
    schedule();
  };
  const onVisibility = () => {
    if (!document.hidden && !stopped) tick();
    else clearTimeout(timer);
  };
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisibility);
    running.delete(stop);
  };
  document.addEventListener("visibilitychange", onVisibility);
  running.add(stop);
  tick();
  return stop;
}

// ---------------------------------------------------------------- charts

const charts = new WeakMap();

// A Chart.js chart in a labelled figure, with the numbers as a table too.
export function chart(title, type, labels, datasets, options = {}) {
  const canvas = h("canvas", { role: "img", "aria-label": title });
  const figure = h("figure", { class: "chart" }, h("figcaption", {}, title), h("div", { class: "canvas-box" }, canvas));
  const config = {
    type,
    data: { labels, datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: datasets.length > 1 || type === "doughnut" } },
      ...options,
    },
  };
  if (window.Chart) charts.set(figure, new window.Chart(canvas, config));
  return figure;
}

export function updateChart(figure, labels, datasets) {
  const instance = charts.get(figure);
  if (!instance) return;
  instance.data.labels = labels;
  instance.data.datasets = datasets;
  instance.update();
}
