// Dashboard: users, campaigns, the last 24 h of messages and inbound, and the
// running campaigns' progress. Polled every 15 s (the dashboard is a few
// count() queries per panel), and not at all while the tab is hidden.
import { api } from "../api.js";
import { h, replace, chart, updateChart, poll, table, badge } from "../ui.js";

const DASHBOARD_MS = 15000;
const RUNNING_SHOWN = 5;

function bars(title, counts) {
  const labels = Object.keys(counts);
  return chart(title, "bar", labels, [{ label: title, data: labels.map((k) => counts[k]) }], {
    scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
  });
}

function numbers(title, counts) {
  return table(title, ["", "count"], Object.entries(counts).map(([k, v]) => [k, String(v)]));
}

async function runningProgress() {
  const page = await api("GET", "/v1/campaigns", { query: { status: "RUNNING", limit: RUNNING_SHOWN } });
  const rows = [];
  for (const campaign of page.items) {
    const summary = await api("GET", `/v1/campaigns/${encodeURIComponent(campaign.id)}/summary`);
    const settled = summary.targeted - (summary.counts.QUEUED || 0) - (summary.counts.SENDING || 0);
    const total = summary.planned || summary.targeted || 0;
    rows.push([
      h("a", { href: "#/campaigns/" + encodeURIComponent(campaign.id) }, campaign.name),
      badge(campaign.status),
      h("progress", { max: Math.max(total, 1), value: Math.min(settled, total), "aria-label": `${campaign.name} progress` }),
      `${settled} / ${total}`,
    ]);
  }
  return table("Running campaigns", ["campaign", "status", "progress", "settled"], rows, {
    empty: "none running.",
  });
}

export async function render(main) {
  const stamp = h("p", { class: "muted", role: "status" }, "Loading…");
  const grid = h("div", { class: "grid" });
  const running = h("section", { "aria-label": "Running campaigns" });
  replace(main, h("h1", {}, "Dashboard"), stamp, grid, running);
  let figures = null;
  poll(async () => {
    const data = await api("GET", "/v1/dashboard");
    const panels = [
      ["Users per consent state", data.users_by_consent_state],
      ["Campaigns per status", data.campaigns_by_status],
      [`Messages per status (${data.window_hours} h)`, data.messages_by_status],
      [`Inbound per classification (${data.window_hours} h)`, data.inbound.by_classification],
    ];
    if (!figures) {
      figures = panels.map(([title, counts]) => {
        const card = h("section", { class: "card" }, bars(title, counts), numbers(title, counts));
        grid.append(card);
        return card;
      });
    } else {
      panels.forEach(([title, counts], i) => {
        const labels = Object.keys(counts);
        updateChart(figures[i].firstChild, labels, [{ label: title, data: labels.map((k) => counts[k]) }]);
        figures[i].lastChild.replaceWith(numbers(title, counts));
      });
    }
    replace(running, await runningProgress());
    stamp.textContent = `Updated ${new Date(data.generated_at).toLocaleTimeString()} · refreshes every ${DASHBOARD_MS / 1000} s`;
  }, DASHBOARD_MS);
}
