// Skyfleet ops console: log in, fetch the JSON API, follow /api/events, draw small canvas plots.
"use strict";

const $ = (selector) => document.querySelector(selector);
const fmt = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const pct = (v) => `${Math.round(100 * v)}%`;

async function getJSON(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

let me = { name: null, may_read: false, may_act: false, csrf_token: null };

// Actions carry the session's CSRF token; the session itself is an HttpOnly cookie.
async function act(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf_token || "" },
    body: JSON.stringify(body || {}),
  });
  if (!response.ok) {
    alert(`${path}: ${(await response.json()).detail}`);
    await loadMe();
  }
  refreshLists();
}

function showMe() {
  $("#login").hidden = Boolean(me.name);
  $("#account").hidden = !me.name;
  $("#user").textContent = me.name ? `${me.name} (${me.role})` : "";
  $("#login-needed").hidden = me.may_read;
  document.body.classList.toggle("may-act", Boolean(me.may_act));
}

async function loadMe() {
  const response = await fetch("/api/me");
  me = response.ok ? await response.json() : { name: null, may_read: false, may_act: false };
  showMe();
}

async function logIn(event) {
  event.preventDefault();
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: $("#login-name").value, token: $("#login-token").value }),
  });
  $("#login-token").value = "";
  $("#login-error").textContent = response.ok ? "" : (await response.json()).detail;
  if (!response.ok) return;
  me = await response.json();
  showMe();
  connect();
}

async function logOut() {
  await fetch("/api/logout", { method: "POST" });
  location.reload();
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function renderSummary(summary) {
  $("#totals").textContent =
    `${summary.sites.length} sites · ${summary.frames} frames · ${summary.targets} targets · ` +
    `${summary.confident_targets} confident`;
  const body = $("#sites tbody");
  body.replaceChildren();
  for (const s of summary.sites) {
    const row = body.insertRow();
    row.dataset.site = s.site_id;
    cell(row, s.name ? `${s.site_id} (${s.name})` : s.site_id);
    cell(row, s.status, `status ${s.status}`);
    cell(row, s.frames);
    cell(row, pct(s.fraction_good));
    cell(row, pct(s.fraction_medium));
    cell(row, pct(s.fraction_bad));
    cell(row, fmt(s.mean_fwhm_arcsec));
    cell(row, fmt(s.mean_background_adu, 0));
    cell(row, fmt(s.mean_transparency));
    cell(row, s.frames_last_hour);
    cell(row, s.model_version || "–");
    cell(row, s.queue_depth ?? "–");
    cell(row, s.alerts.join("; "));
  }
  $("#alerts").textContent = summary.alerts.join(" · ");
  renderMap(summary.sites);
  renderQualityPlots(summary.sites);
}

function renderMap(sites) {
  const group = $("#map-sites");
  group.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  for (const s of sites.filter((s) => s.lat_deg !== null)) {
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("cx", s.lon_deg);
    dot.setAttribute("cy", -s.lat_deg);
    dot.setAttribute("r", 3);
    dot.setAttribute("class", s.status);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", s.lon_deg + 4);
    label.setAttribute("y", -s.lat_deg + 2);
    label.textContent = s.site_id;
    group.append(dot, label);
  }
}

function drawSeries(canvas, series, yMax) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const n = Math.max(...series.map((s) => s.values.length), 1);
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.beginPath();
    s.values.forEach((v, i) => {
      const x = n === 1 ? canvas.width / 2 : (i / (n - 1)) * (canvas.width - 10) + 5;
      const y = canvas.height - 5 - ((v ?? 0) / yMax) * (canvas.height - 10);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
      ctx.fillStyle = s.color;
      ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
    });
    ctx.stroke();
  }
}

async function renderQualityPlots(sites) {
  const holder = $("#quality-plots");
  for (const s of sites) {
    let box = holder.querySelector(`[data-site="${s.site_id}"]`);
    if (!box) {
      box = document.createElement("div");
      box.className = "plot";
      box.dataset.site = s.site_id;
      box.innerHTML = `<div>${s.site_id}: <span style="color:#3ddc84">good</span> ` +
        `<span style="color:#eb5757">bad</span> <span style="color:#56ccf2">seeing/5″</span></div>` +
        `<canvas width="300" height="120"></canvas>`;
      holder.append(box);
    }
    const bins = await getJSON(`/api/sites/${s.site_id}/quality?hours=24&bin_s=300`);
    drawSeries(box.querySelector("canvas"), [
      { color: "#3ddc84", values: bins.map((b) => b.fraction_good) },
      { color: "#eb5757", values: bins.map((b) => b.fraction_bad) },
      { color: "#56ccf2", values: bins.map((b) => (b.mean_fwhm_arcsec ?? 0) / 5) },
    ], 1);
  }
}

function renderTargets(targets) {
  const body = $("#targets tbody");
  body.replaceChildren();
  for (const t of targets) {
    const row = body.insertRow();
    row.dataset.target = t.target_id;
    const name = cell(row, t.name);
    name.style.cursor = "pointer";
    name.onclick = () => showTarget(t.target_id);
    cell(row, fmt(t.ra_deg, 5));
    cell(row, fmt(t.dec_deg, 5));
    cell(row, t.n_detections);
    cell(row, t.sites.join(", "));
    cell(row, fmt(t.confidence) + (t.moving ? " (moving)" : ""));
    cell(row, t.priority);
    cell(row, t.mark || "");
    const buttons = row.insertCell();
    const up = document.createElement("button");
    up.textContent = "priority ↑";
    up.className = "action";
    up.onclick = () => act(`/api/targets/${t.target_id}/priority`, { priority: Math.max(1, t.priority - 1) });
    const dismiss = document.createElement("button");
    dismiss.textContent = "dismiss";
    dismiss.className = "action";
    dismiss.onclick = () => act(`/api/targets/${t.target_id}/mark`, { mark: "dismissed" });
    buttons.append(up, dismiss);
  }
}

function drawCutout(canvas, pixels) {
  const h = pixels.length, w = pixels[0].length;
  canvas.width = w;
  canvas.height = h;
  const flat = pixels.flat().slice().sort((a, b) => a - b);
  const lo = flat[Math.floor(0.02 * (flat.length - 1))], hi = flat[Math.floor(0.98 * (flat.length - 1))];
  const image = canvas.getContext("2d").createImageData(w, h);
  pixels.forEach((row, y) => row.forEach((v, x) => {
    const g = hi > lo ? Math.max(0, Math.min(255, (255 * (v - lo)) / (hi - lo))) : 128;
    image.data.set([g, g, g, 255], 4 * (y * w + x));
  }));
  canvas.getContext("2d").putImageData(image, 0, 0);
}

async function showTarget(targetId) {
  const target = await getJSON(`/api/targets/${targetId}`);
  $("#target-detail").hidden = false;
  $("#target-name").textContent = `${target.name}: ${target.n_detections} detections from ${target.sites.join(", ")}`;
  const fluxes = target.detections.map((d) => d.flux_adu);
  drawSeries($("#lightcurve"), [{ color: "#f2c94c", values: fluxes }], Math.max(...fluxes, 1) * 1.1);
  const holder = $("#cutouts");
  holder.replaceChildren();
  if (target.detections.length) {
    const stamps = await getJSON(`/api/cutouts/${encodeURIComponent(target.detections[0].message_id)}`);
    for (const kind of ["new", "reference", "difference"]) {
      const canvas = document.createElement("canvas");
      canvas.className = `cutout ${kind}`;
      canvas.title = kind;
      drawCutout(canvas, stamps[kind]);
      holder.append(canvas);
    }
  }
}

function renderFollowups(followups) {
  const body = $("#followups tbody");
  body.replaceChildren();
  for (const f of followups) {
    const row = body.insertRow();
    row.dataset.request = f.request_id;
    cell(row, f.request_id);
    cell(row, f.target_name);
    cell(row, f.site_id);
    cell(row, f.state, `state ${f.state}`);
    cell(row, f.priority);
    cell(row, f.not_before ? new Date(f.not_before).toISOString().slice(0, 16) : "now");
    cell(row, new Date(f.deadline).toISOString().slice(0, 16));
    cell(row, f.reason);
    const buttons = row.insertCell();
    if (["sent", "accepted", "observing"].includes(f.state)) {
      const cancel = document.createElement("button");
      cancel.textContent = "cancel";
      cancel.className = "action";
      cancel.onclick = () => act(`/api/followups/${f.request_id}/cancel`);
      buttons.append(cancel);
    }
  }
}

function renderModels(models) {
  const body = $("#models tbody");
  body.replaceChildren();
  for (const m of models) {
    const row = body.insertRow();
    cell(row, m.site_id);
    cell(row, m.heartbeat_model_version || "–");
    cell(row, m.scoring_model || "–");
  }
}

async function refreshLists() {
  const [targets, followups, models] = await Promise.all([
    getJSON("/api/targets"), getJSON("/api/followups"), getJSON("/api/models"),
  ]);
  renderTargets(targets);
  renderFollowups(followups);
  renderModels(models);
}

let events = null;

function connect() {
  if (!me.may_read) $("#live").textContent = "not logged in";
  if (events || !me.may_read) return;
  events = new EventSource("/api/events");
  events.addEventListener("summary", (event) => {
    renderSummary(JSON.parse(event.data));
    refreshLists();
    $("#live").textContent = "live";
    $("#live").className = "badge online";
  });
  events.onerror = () => {
    $("#live").textContent = "reconnecting…";
    $("#live").className = "badge offline";
  };
}

$("#login").addEventListener("submit", logIn);
$("#logout").addEventListener("click", logOut);
loadMe().then(connect);
