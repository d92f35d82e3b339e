// The Source page (/sources/<id>): every detection from every site, the light curve in
// magnitudes per filter and site against MJD with upper limits, cutouts of every detection, the
// fused position, classification and comments, and follow-ups with their history and why
// they went to that site and time; operators comment, classify and request follow-ups.
"use strict";

const targetId = Number(location.pathname.split("/").pop());
const SITE_SYMBOLS = ["circle", "square", "diamond", "cross", "x", "star", "hexagon"];
const PLOT_LAYOUT = {
  paper_bgcolor: "#0f1420", plot_bgcolor: "#111a2a", font: { color: "#dde3ee", size: 11 },
  margin: { l: 55, r: 10, t: 10, b: 45 }, legend: { orientation: "h", y: -0.25 },
};
let shownDetections = "";
let shown = null;  // the source as last loaded
let sites = {};  // site id → its location, from the fleet summary

function lightCurve(source) {
  const sites = [...new Set(source.detections.map((d) => d.site_id))].sort();
  const groups = new Map();
  for (const d of source.detections.filter((d) => d.mag !== null)) {
    const key = `${d.filter || "?"} · ${d.site_id}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(d);
  }
  const traces = [...groups].map(([key, points]) => ({
    name: key, type: "scatter", mode: "markers",
    x: points.map((d) => mjd(d.observed_at)), y: points.map((d) => d.mag),
    error_y: { type: "data", array: points.map((d) => d.mag_err || 0), visible: true },
    marker: { size: 9, symbol: SITE_SYMBOLS[sites.indexOf(points[0].site_id) % SITE_SYMBOLS.length] },
  }));
  if (source.upper_limits.length) {
    traces.push({
      name: "upper limits", type: "scatter", mode: "markers",
      x: source.upper_limits.map((u) => mjd(u.observed_at)), y: source.upper_limits.map((u) => u.mag),
      text: source.upper_limits.map((u) => `${u.site_id} ${u.filter || ""}`),
      marker: { symbol: "triangle-down-open", size: 10, color: "#9aa6bd" },
    });
  }
  const empty = !traces.length;
  Plotly.react("lightcurve", traces, {
    ...PLOT_LAYOUT,
    xaxis: { title: { text: "MJD (UTC)" }, gridcolor: "#24344f", tickformat: ".3f" },
    yaxis: { title: { text: "magnitude" }, autorange: "reversed", gridcolor: "#24344f" },
    annotations: empty ? [{ text: "no calibrated magnitudes yet", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }] : [],
  }, { displaylogo: false, responsive: true });
}

function facts(source) {
  const error = source.position_error_arcsec === null ? "" : ` ± ${fmt(source.position_error_arcsec, 2)}″`;
  $("#facts").innerHTML = `
    <dt>status</dt><dd id="status">${esc(source.status)}${source.promoted_by ? ` <small>by ${esc(source.promoted_by)}</small>` : ""}</dd>
    <dt>classification</dt><dd id="classification">${esc(source.mark || "–")}</dd>
    <dt>position</dt><dd>RA ${fmt(source.ra_deg, 5)}°, Dec ${fmt(source.dec_deg, 5)}°${error}</dd>
    <dt>seen</dt><dd>${source.n_detections} detections in ${source.n_frames} frames from ${esc(source.sites.join(", "))}</dd>
    <dt>first / last</dt><dd>MJD ${fmt(mjd(source.first_seen), 4)} / ${fmt(mjd(source.last_seen), 4)}</dd>
    <dt>confidence</dt><dd>${fmt(source.confidence)} <small>priority ${source.priority}</small></dd>`;
}

function detections(source) {
  const key = source.detections.map((d) => `${d.message_id}:${d.label}`).join();
  if (key === shownDetections) return;  // stamps are fetched once, not at every refresh
  shownDetections = key;
  $("#detections tbody").replaceChildren(...source.detections.map((d) => {
    const row = document.createElement("tr");
    row.innerHTML = `<td></td><td>${esc(d.observed_at.replace("T", " ").slice(0, 19))}</td>
      <td>${fmt(mjd(d.observed_at), 5)}</td><td>${esc(d.site_id)}</td><td>${esc(d.filter || "–")}</td>
      <td>${d.mag === null ? "–" : `${fmt(d.mag)} ± ${fmt(d.mag_err)}`}</td><td>${fmt(d.snr, 1)}</td>
      <td>${fmt(d.real_bogus)}</td><td>${esc(d.label || "–")}</td>`;
    row.firstElementChild.append(stampsFigure(d.message_id));
    return row;
  }));
}

// Plane-parallel airmass of the source from a site at a time (sidereal time from the GMST
// polynomial: ample for a plot), or null below the horizon.
const J2000_MJD = 51544.5;
function airmassAt(site, when) {
  const days = mjd(when) - J2000_MJD;
  const hourAngle = (280.46061837 + 360.98564736629 * days + site.lon_deg - shown.ra_deg) * Math.PI / 180;
  const lat = site.lat_deg * Math.PI / 180, dec = shown.dec_deg * Math.PI / 180;
  const sinAlt = Math.sin(lat) * Math.sin(dec) + Math.cos(lat) * Math.cos(dec) * Math.cos(hourAngle);
  return sinAlt > 0 ? 1 / sinAlt : null;
}

const AIRMASS_STEP_MS = 10 * 60e3;
const AIRMASS_MAX = 3;
function airmassPlot(f, options, box) {
  const located = options.filter((o) => sites[o.site_id]?.lat_deg != null);
  if (!located.length) return;
  const from = Date.parse(f.sent_at), to = Date.parse(f.deadline);
  const times = [];
  for (let t = from; t <= to; t += AIRMASS_STEP_MS) times.push(new Date(t).toISOString());
  const traces = located.map((o) => ({
    name: o.site_id, mode: "lines", x: times,
    y: times.map((t) => { const a = airmassAt(sites[o.site_id], t); return a && a <= AIRMASS_MAX ? a : null; }),
  }));
  traces.push({
    name: "planned start", mode: "markers", marker: { size: 11, symbol: "star", color: "#f2c94c" },
    x: located.map((o) => o.start), y: located.map((o) => o.airmass ?? airmassAt(sites[o.site_id], o.start)),
  });
  const plot = document.createElement("div");
  plot.className = "airmass";
  box.append(plot);
  Plotly.newPlot(plot, traces, {
    ...PLOT_LAYOUT, margin: { l: 55, r: 10, t: 10, b: 35 },
    xaxis: { title: { text: "time (UTC)" }, gridcolor: "#24344f" },
    yaxis: { title: { text: "airmass" }, autorange: "reversed", gridcolor: "#24344f" },
  }, { displaylogo: false, responsive: true });
}

// Why this site and time: the constraints met, what decided it, the quality expected, and
// every site considered with its score, start and airmass.
function explanation(f, box) {
  const why = f.explanation;
  if (!why) { box.insertAdjacentHTML("beforeend", "<p class='why'><small>No explanation recorded.</small></p>"); return; }
  const expected = Object.entries(why.expected || {}).map(([k, v]) => `${esc(k.replaceAll("_", " "))} ${esc(typeof v === "number" ? fmt(v) : v)}`).join(" · ");
  const options = why.sites || [];
  box.insertAdjacentHTML("beforeend", `<dl class="facts why">
    <dt>constraints met</dt><dd>${esc((why.constraints_met || []).join(", ") || "–")}</dd>
    <dt>deciding</dt><dd>${why.deciding ? `${esc(why.deciding.constraint)}: ${esc(why.deciding.detail)}` : "–"}</dd>
    <dt>expected</dt><dd>${expected || "–"}</dd>
    <dt>start</dt><dd>${why.start ? esc(why.start.slice(0, 16).replace("T", " ")) + " UTC" : "as soon as possible"}</dd></dl>
    ${options.length ? `<table class="options"><thead><tr><th>site</th><th>score</th><th>start (UTC)</th><th>altitude</th><th>airmass</th><th>vetoed by</th></tr></thead>
    <tbody>${options.map((o) => `<tr${o.site_id === f.site_id ? ' class="chosen"' : ""}><td>${esc(o.site_id)}</td><td>${fmt(o.score)}</td>
      <td>${o.start ? esc(o.start.slice(0, 16).replace("T", " ")) : "–"}</td><td>${o.altitude_deg == null ? "–" : `${fmt(o.altitude_deg, 0)}°`}</td>
      <td>${fmt(o.airmass)}</td><td>${esc(Object.entries(o.factors || {}).filter(([, v]) => v === 0).map(([k]) => k).join(", ") || "–")}</td></tr>`).join("")}</tbody></table>` : ""}`);
  airmassPlot(f, options.length ? options : [{ site_id: f.site_id, start: why.start || f.sent_at }], box);
}

let shownFollowups = "";
function followups(source) {
  const key = JSON.stringify(source.followups);
  if (key === shownFollowups) return;  // plots are drawn again only when something changed
  shownFollowups = key;
  const list = $("#followups");
  if (!source.followups.length) { list.textContent = "No follow-up requests yet."; return; }
  list.replaceChildren(...source.followups.map((f) => {
    const box = document.createElement("article");
    box.className = "card followup";
    box.dataset.requestId = f.request_id;
    const total = f.exposures_total ?? f.plan?.count;
    const plan = f.plan ? `${f.plan.count} × ${f.plan.exptime_s} s in ${esc(f.plan.filter)}` : "";
    box.innerHTML = `<h3>${esc(f.request_id)} at ${esc(f.site_id)} <span class="state ${esc(f.state)}">${esc(f.state)}</span>
      <small class="progress">${f.exposures_done}/${total ?? "?"} exposures</small></h3>
      <p>${plan} · priority ${f.priority} · score ${fmt(f.score)} · ${f.not_before ? `not before ${esc(f.not_before.slice(0, 16))}` : "as soon as possible"}, deadline ${esc(f.deadline.slice(0, 16))} UTC
      ${f.reason ? `<br><small>${esc(f.reason)}</small>` : ""}</p>
      <ol class="history">${f.history.map((h) => `<li>${esc(h.reported_at.slice(11, 19))} ${esc(h.state)} ${h.exposures_done}/${h.exposures_total ?? "?"} ${esc(h.reason || "")}</li>`).join("")}</ol>`;
    explanation(f, box);
    return box;
  }));
}

async function load() {
  try {
    const source = await getJSON(`/api/sources/${targetId}`);
    shown = source;
    document.title = `${source.name} · Skyfleet`;
    $("#source-name").textContent = source.name;
    facts(source);
    lightCurve(source);
    detections(source);
    followups(source);
    $("#comments").innerHTML = source.comments.map((c) =>
      `<li><b>${esc(c.user_name)}</b> <small>${esc(c.at.slice(0, 16).replace("T", " "))}</small> ${esc(c.text)}</li>`).join("");
    $("#source-page").dataset.loaded = "true";
  } catch (error) {
    $("#message").textContent = error.message;
  }
}

async function run(what, path, body) {
  try {
    const answer = await act(path, body);
    $("#message").textContent = what(answer);
    await load();
  } catch (error) {
    $("#message").textContent = error.message;
  }
}

page(async () => {
  for (const [label, name] of [["real", "save"], ["bogus", "reject"], ["variable", "variable"], ["asteroid", "asteroid"]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `action ${name}`;
    button.textContent = name;
    button.onclick = () => run(() => `labelled ${label}`, `/api/targets/${targetId}/label`, { label });
    $("#verdicts").append(button);
  }
  $("#comment-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("#comment-text").value;
    run(() => { $("#comment-text").value = ""; return "comment added"; }, `/api/sources/${targetId}/comments`, { text });
  });
  $("#followup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run((a) => `follow-up ${a.request_id} requested`, `/api/sources/${targetId}/followups`, {
      filter: $("#fu-filter").value, exptime_s: Number($("#fu-exptime").value),
      count: Number($("#fu-count").value), priority: Number($("#fu-priority").value),
    });
  });
  document.addEventListener("skyfleet:login", load);
  const summary = await getJSON("/api/summary").catch(() => ({ sites: [] }));
  sites = Object.fromEntries(summary.sites.map((s) => [s.site_id, s]));
  await load();
  followLive(load);
});
