// The Night report (/night?date=YYYY-MM-DD&site=...): per site and for the fleet, hours on
// sky, frames by label and by cause, rejections, candidates, sources, follow-ups and downtime;
// the same report downloads as CSV or JSON. Without a date: each site's current night. Live:
// redrawn when the fleet's frame count changes.
"use strict";

function chosen() {
  const query = new URLSearchParams(location.search);
  return { date: query.get("date") || "", site: query.get("site") || "" };
}

function apiQuery(filters, format) {
  const query = new URLSearchParams({ format });
  for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value);
  return `/api/night?${query}`;
}

const counts = (byName) => Object.entries(byName).filter(([, n]) => n > 0)
  .map(([name, n]) => `${esc(name)} ${n}`).join(", ") || '<span class="muted">–</span>';

function row(r) {
  const name = r.site_id === "fleet" ? "fleet"
    : `<a href="/sites/${encodeURIComponent(r.site_id)}">${esc(r.site_id)}</a>`;
  const span = r.night_start ? `${r.night_start.slice(0, 10)} ${utc(r.night_start, false)}` : "–";
  return `<tr class="${r.site_id === "fleet" ? "fleet" : ""}" data-site="${esc(r.site_id)}">
    <td>${name}</td><td>${esc(span)}</td>
    <td class="num">${fmt(r.dark_hours, 1)}</td><td class="num">${fmt(r.hours_on_sky, 2)}</td>
    <td class="num">${fmt(r.downtime_hours, 2)}</td><td class="num">${r.frames}</td>
    <td class="num">${r.frames_by_label.good}</td><td class="num">${r.frames_by_label.medium}</td>
    <td class="num">${r.frames_by_label.bad}</td><td>${counts(r.frames_by_reason)}</td>
    <td class="num">${r.rejected}</td><td class="num">${r.candidates}</td>
    <td class="num">${r.sources}</td><td>${counts(r.followups)}</td></tr>`;
}

function renderPlots(report) {
  const sites = report.sites.map((s) => s.site_id);
  const labels = ["good", "medium", "bad"].map((label) => ({
    type: "bar", name: label, x: sites, y: report.sites.map((s) => s.frames_by_label[label]),
    marker: { color: LABEL_COLOURS[label] },
  }));
  Plotly.react("labels-plot", labels, plotLayout("site", "frames", { barmode: "stack" }), PLOT_CONFIG);
  const reasons = Object.keys(report.fleet.frames_by_reason);
  const causes = report.sites.map((s) => ({
    type: "bar", name: s.site_id, x: reasons, y: reasons.map((r) => s.frames_by_reason[r]),
  }));
  const layout = plotLayout("", "frames", { barmode: "stack", margin: { l: 60, r: 20, t: 10, b: 70 } });
  Plotly.react("reasons-plot", causes, layout, PLOT_CONFIG);
}

async function load() {
  const filters = chosen();
  $("#f-date").value = filters.date;
  $("#f-site").value = filters.site;
  $("#export-csv").href = apiQuery(filters, "csv");
  $("#export-json").href = apiQuery(filters, "json");
  const report = await getJSON(apiQuery(filters, "json"));
  $("#night-title").textContent = report.date ? `night of ${report.date}` : "each site's current night";
  $("#night-table tbody").innerHTML = [...report.sites, report.fleet].map(row).join("");
  renderPlots(report);
}

async function start() {
  if (!me.may_read) {
    $("#message").textContent = "Log in to see the night report.";
    document.addEventListener("skyfleet:login", () => location.reload());
    return;
  }
  const summary = await getJSON("/api/summary");
  for (const s of summary.sites) $("#f-site").add(new Option(s.site_id, s.site_id));
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const key of ["date", "site"]) if ($(`#f-${key}`).value) query.set(key, $(`#f-${key}`).value);
    history.replaceState(null, "", `/night?${query}`);
    load().catch((error) => { $("#message").textContent = error.message; });
  });
  try {
    await load();
  } catch (error) {
    $("#message").textContent = error.message;
  }
  let frames = summary.frames;
  liveSummary((now) => {
    if (now.frames === frames) return;
    frames = now.frames;
    load().catch((error) => { $("#message").textContent = error.message; });
  });
}

document.addEventListener("DOMContentLoaded", () => page(start));
