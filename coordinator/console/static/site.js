// The Site page (/sites/<site_id>): the site's status, link, weather and model; its night
// (twilights, Moon); seeing, background and transparency against time of night; and a frame
// browser (thumbnail, label, confidence, reasons, metrics) with filters and pages kept in the
// URL (?label=bad&reason=seeing&since=...&until=...&limit=50&offset=0). Each frame shows the
// operator's label that counts, and operators label it good / medium / bad (it trains the
// quality model with the highest weight). Live: redrawn when the site's frame count changes in
// the fleet summary.
"use strict";

const siteId = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
const api = (path) => `/api/sites/${encodeURIComponent(siteId)}${path}`;
const QUALITY = ["good", "medium", "bad"]; // the quality labels, as the site and operators give them
const TWILIGHTS = [ // [from, to, shade]: darker as the Sun sinks
  ["sunset", "civil_dusk", "rgba(86, 204, 242, 0.10)"],
  ["civil_dusk", "nautical_dusk", "rgba(86, 204, 242, 0.07)"],
  ["nautical_dusk", "astronomical_dusk", "rgba(86, 204, 242, 0.04)"],
  ["astronomical_dawn", "nautical_dawn", "rgba(86, 204, 242, 0.04)"],
  ["nautical_dawn", "civil_dawn", "rgba(86, 204, 242, 0.07)"],
  ["civil_dawn", "sunrise", "rgba(86, 204, 242, 0.10)"],
];
const NIGHT_EVENTS = [
  ["sunset", "Sunset"], ["civil_dusk", "Civil dusk (−6°)"], ["nautical_dusk", "Nautical dusk (−12°)"],
  ["astronomical_dusk", "Astronomical dusk (−18°)"], ["astronomical_dawn", "Astronomical dawn (−18°)"],
  ["nautical_dawn", "Nautical dawn (−12°)"], ["civil_dawn", "Civil dawn (−6°)"], ["sunrise", "Sunrise"],
  ["moon_rise", "Moonrise"], ["moon_set", "Moonset"],
];
const CONDITIONS = [
  ["safe", "safe", (v) => (v === null ? "–" : v ? "yes" : "NO")],
  ["cloud_cover_pct", "cloud cover", (v) => `${fmt(v, 0)} %`],
  ["humidity_pct", "humidity", (v) => `${fmt(v, 0)} %`],
  ["wind_speed_m_s", "wind", (v) => `${fmt(v, 1)} m/s`],
  ["temperature_c", "temperature", (v) => `${fmt(v, 1)} °C`],
  ["sky_quality_mag_arcsec2", "sky brightness", (v) => `${fmt(v, 2)} mag/arcsec²`],
  ["seeing_arcsec", "seeing monitor", (v) => `${fmt(v, 2)}″`],
];

let night = null;

function filters() {
  const query = new URLSearchParams(location.search);
  return {
    label: query.get("label") || "", reason: query.get("reason") || "",
    since: query.get("since") || "", until: query.get("until") || "",
    limit: Number(query.get("limit") || 50), offset: Number(query.get("offset") || 0),
  };
}

function go(chosen) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(chosen)) if (value !== "" && value !== 0) query.set(key, value);
  history.replaceState(null, "", `${location.pathname}?${query}`);
  loadFrames();
}

const facts = (pairs) => pairs.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("");

function renderSite(site) {
  document.title = `${site.site_id} · Skyfleet`;
  $("#site-name").textContent = site.name ? `${site.site_id} — ${site.name}` : site.site_id;
  $("#site-status").innerHTML = `<span class="status ${esc(site.status)}">${esc(site.status)}</span>`;
  $("#message").innerHTML = site.alerts.map(esc).join("<br>");
  const place = site.lat_deg === null ? "–"
    : `${fmt(site.lat_deg, 3)}°, ${fmt(site.lon_deg, 3)}°, ${fmt(site.height_m, 0)} m`;
  const weather = site.conditions
    ? CONDITIONS.filter(([key]) => site.conditions[key] !== undefined && site.conditions[key] !== null)
      .map(([key, name, show]) => [name, esc(show(site.conditions[key]))])
    : [["weather", "no weather devices reported"]];
  $("#facts").innerHTML = facts([
    ["location", esc(place)],
    ["link", esc(site.link_state || "–")],
    ["heartbeat", esc(ago(site.heartbeat_age_s))],
    ["agent", esc(site.agent_version || "–")],
    ["quality model", esc(site.model_version || "–")],
    ["queue", `${esc(site.queue_depth ?? "–")} files`],
    ["frames", `${site.frames} (${pct(site.fraction_bad)} bad), ${site.frames_last_hour} in the last hour`],
    ...weather,
  ]);
  night = site.night;
  if (!night) {
    $("#night").innerHTML = facts([["", "the site has not sent its location"]]);
    return;
  }
  $("#night-span").textContent = `${utc(night.night_start)} → ${utc(night.night_end)}`;
  $("#night").innerHTML = facts([
    ...NIGHT_EVENTS.map(([key, name]) => [name, esc(night[key] ? utc(night[key]) : "does not happen")]),
    ["Moon illuminated", pct(night.moon_illumination)],
    ["Dark (Sun < −18°)", `${fmt(night.dark_hours, 1)} h`],
  ]);
}

function nightShapes() {
  if (!night) return [];
  const band = (x0, x1, fillcolor) => ({
    type: "rect", xref: "x", yref: "paper", x0, x1, y0: 0, y1: 1, fillcolor, line: { width: 0 }, layer: "below",
  });
  const shapes = TWILIGHTS.filter(([a, b]) => night[a] && night[b]).map(([a, b, shade]) => band(night[a], night[b], shade));
  shapes.push({ type: "line", xref: "x", yref: "paper", x0: new Date().toISOString(),
    x1: new Date().toISOString(), y0: 0, y1: 1, line: { color: "#56ccf2", width: 1, dash: "dot" } });
  return shapes;
}

function renderMetrics(series) {
  const panels = [
    ["fwhm_arcsec", "seeing (″ FWHM)", "y"], ["background_adu", "background (ADU)", "y2"],
    ["transparency", "transparency", "y3"],
  ];
  const traces = [];
  for (const label of QUALITY) {
    const index = series.labels.flatMap((l, i) => (l === label ? [i] : []));
    panels.forEach(([key, name, yaxis], p) => traces.push({
      type: "scatter", mode: "markers", name: label, legendgroup: label, showlegend: p === 0,
      x: index.map((i) => series.times[i]), y: index.map((i) => series[key][i]), yaxis,
      marker: { color: LABEL_COLOURS[label], size: 6 },
      hovertemplate: `%{x|%H:%M:%S} UTC<br>${name}: %{y:.2f}<extra>${label}</extra>`,
    }));
  }
  const start = night ? (night.sunset || night.night_start) : undefined;
  const end = night ? (night.sunrise || night.night_end) : undefined;
  const axis = plotLayout("", "").yaxis;
  const layout = plotLayout("time (UTC)", "", {
    xaxis: { ...axis, title: { text: "time (UTC)" }, type: "date", anchor: "y3", range: start ? [start, end] : undefined },
    yaxis: { ...axis, title: { text: "seeing (″)" }, domain: [0.7, 1], rangemode: "tozero" },
    yaxis2: { ...axis, title: { text: "background (ADU)" }, domain: [0.36, 0.64], anchor: "x" },
    yaxis3: { ...axis, title: { text: "transparency" }, domain: [0, 0.3], range: [0, 1.2], anchor: "x" },
    shapes: nightShapes(),
  });
  Plotly.react("metrics-plot", traces, layout, PLOT_CONFIG);
}

function operatorCell(f) {
  const given = f.operator_label;
  const shown = given
    ? `<span class="operator-label label-${esc(given.label)}" title="${esc(`${given.user_name}, ${utc(given.at)}${given.note ? `: ${given.note}` : ""}`)}">${esc(given.label)}</span>`
    : '<span class="muted">–</span>';
  const buttons = QUALITY.map((label) =>
    `<button type="button" class="action" data-label="${label}"${given && given.label === label ? ' aria-pressed="true"' : ""}>${label}</button>`).join("");
  return `<td class="operator">${shown} ${buttons}</td>`;
}

async function labelFrame(row, label) {
  const frame = row.dataset.frame;
  try {
    await act(`/api/frames/${encodeURIComponent(frame)}/label`, { label });
    $("#message").textContent = `${row.dataset.file}: labelled ${label}`;
    await loadFrames();
  } catch (error) {
    $("#message").textContent = `${row.dataset.file}: ${error.message}`;
  }
}

function frameRow(f) {
  const thumb = f.has_thumbnail
    ? `<img src="/api/frames/${encodeURIComponent(f.message_id)}/thumbnail.png" alt="thumbnail of ${esc(f.file_name)}" loading="lazy">`
    : '<span class="muted">none</span>';
  return `<tr class="row-${esc(f.label)}" data-frame="${esc(f.message_id)}" data-file="${esc(f.file_name)}">
    <td class="thumb">${thumb}</td>
    <td>${esc(utc(f.observed_at || f.scored_at))}</td>
    <td>${esc(f.file_name)}</td>
    <td><span class="label-${esc(f.label)}">${esc(f.label)}</span></td>
    <td class="num">${fmt(f.confidence)}</td>
    <td class="reasons">${f.reasons.map(esc).join(", ") || '<span class="muted">–</span>'}</td>
    <td class="num">${fmt(f.fwhm_arcsec)}</td>
    <td class="num">${fmt(f.background_adu, 0)}</td>
    <td class="num">${fmt(f.transparency)}</td>
    <td class="num">${f.source_count}</td>
    <td>${esc(f.model)}</td>
    ${operatorCell(f)}</tr>`;
}

// The time inputs are read as UTC ("2026-12-03T21:00" is 21:00 UTC), as the table shows.
const asUtc = (local) => (local.length === 16 ? `${local}:00Z` : `${local}Z`);

async function loadFrames() {
  const chosen = filters();
  const query = new URLSearchParams({ limit: chosen.limit, offset: chosen.offset });
  for (const key of ["label", "reason"]) if (chosen[key]) query.set(key, chosen[key]);
  for (const key of ["since", "until"]) if (chosen[key]) query.set(key, asUtc(chosen[key]));
  for (const key of ["label", "reason", "since", "until", "limit"]) $(`#f-${key}`).value = chosen[key];
  const answer = await getJSON(`${api("/frames")}?${query}`);
  $("#frames tbody").innerHTML = answer.frames.map(frameRow).join("") ||
    '<tr><td colspan="12" class="muted">no frames match</td></tr>';
  const last = Math.min(answer.offset + answer.limit, answer.total);
  $("#frame-count").textContent = `${answer.total} matching`;
  $("#page-of").textContent = answer.total ? `${answer.offset + 1}–${last} of ${answer.total}` : "";
  $("#prev").disabled = answer.offset === 0;
  $("#next").disabled = last >= answer.total;
}

async function loadAll() {
  renderSite(await getJSON(api("")));
  renderMetrics(await getJSON(api("/metrics")));
  await loadFrames();
}

async function start() {
  if (!me.may_read) {
    $("#message").textContent = "Log in to see this site.";
    document.addEventListener("skyfleet:login", () => location.reload());
    return;
  }
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = Object.fromEntries(["label", "reason", "since", "until", "limit"].map((k) => [k, $(`#f-${k}`).value]));
    go({ ...chosen, offset: 0 });
  });
  $("#frames tbody").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-label]");
    if (button) labelFrame(button.closest("tr"), button.dataset.label);
  });
  $("#prev").addEventListener("click", () => {
    const chosen = filters();
    go({ ...chosen, offset: Math.max(0, chosen.offset - chosen.limit) });
  });
  $("#next").addEventListener("click", () => {
    const chosen = filters();
    go({ ...chosen, offset: chosen.offset + chosen.limit });
  });
  try {
    await loadAll();
  } catch (error) {
    $("#message").textContent = error.message;
    return;
  }
  let frames = null;
  liveSummary((summary) => {
    const site = summary.sites.find((s) => s.site_id === siteId);
    if (!site || site.frames === frames) return;
    const first = frames === null;
    frames = site.frames;
    if (!first) loadAll().catch((error) => { $("#message").textContent = error.message; });
  });
}

document.addEventListener("DOMContentLoaded", () => page(start));
