// Shared by every console page: the header (navigation, live badge, login), the signed-in
// user, JSON fetching, actions with the session's CSRF token, number and time formatting, the
// live fleet summary (server-sent events) and the look of Plotly charts.
"use strict";

const $ = (selector) => document.querySelector(selector);
const fmt = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(100 * v)}%`);
const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
// Times are shown in UTC, as observatories log them: "2026-12-03 21:04 UTC" or "21:04".
function utc(iso, withDate = true) {
  if (!iso) return "–";
  return withDate ? `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC` : iso.slice(11, 16);
}
const ago = (seconds) => (seconds === null || seconds === undefined ? "–"
  : seconds < 90 ? `${Math.round(seconds)} s ago` : seconds < 5400 ? `${Math.round(seconds / 60)} min ago`
  : `${(seconds / 3600).toFixed(1)} h ago`);

const NAV = [
  ["/", "Fleet"],
  ["/night", "Night report"],
  ["/candidates", "Candidates"],
  ["/followups", "Follow-ups"],
];

let me = { name: null, may_read: false, may_act: false, csrf_token: null };

async function getJSON(path) {
  const response = await fetch(path);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${response.status} ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return response.json();
}

// Actions carry the session's CSRF token; the session itself is an HttpOnly cookie.
// Resolves to the answer's JSON, or throws an Error with the server's message.
async function act(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf_token || "" },
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    await loadMe();
    const detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail);
    throw new Error(detail || `${response.status}`);
  }
  return answer;
}

function renderHeader() {
  const header = document.createElement("header");
  const here = location.pathname;
  header.innerHTML = `
    <a class="brand" href="/">Skyfleet</a>
    <nav>${NAV.map(([href, label]) =>
      `<a href="${href}"${href === here ? ' aria-current="page"' : ""}>${label}</a>`).join("")}</nav>
    <span id="live" class="badge offline">connecting…</span>
    <form id="login" class="account" hidden>
      <input id="login-name" name="name" placeholder="name" autocomplete="username" required>
      <input id="login-token" name="token" type="password" placeholder="token" autocomplete="current-password" required>
      <button type="submit">log in</button>
      <span id="login-error" class="error" role="alert"></span>
    </form>
    <span id="account" class="account" hidden>
      <span id="user"></span> <button id="logout" type="button">log out</button>
    </span>`;
  document.body.prepend(header);
  $("#login").addEventListener("submit", logIn);
  $("#logout").addEventListener("click", logOut);
}

function showMe() {
  $("#login").hidden = Boolean(me.name);
  $("#account").hidden = !me.name;
  $("#user").textContent = me.name ? `${me.name} (${me.role})` : "";
  document.body.classList.toggle("may-act", Boolean(me.may_act));
  document.body.classList.toggle("may-read", Boolean(me.may_read));
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
  document.dispatchEvent(new CustomEvent("skyfleet:login"));
}

async function logOut() {
  await fetch("/api/logout", { method: "POST" });
  location.reload();
}

function setLive(online, text) {
  const badge = $("#live");
  badge.className = `badge ${online ? "online" : "offline"}`;
  badge.textContent = text;
}

// The fleet summary, live: `onSummary(summary)` on every change (server-sent events from
// /api/events); the header's badge says whether the stream is up. The browser reconnects.
function liveSummary(onSummary) {
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => setLive(true, "live"));
  events.addEventListener("error", () => setLive(false, me.may_read ? "reconnecting…" : "log in to see the fleet"));
  events.addEventListener("summary", (event) => onSummary(JSON.parse(event.data)));
  return events;
}

// The console's dark look for Plotly charts, with axis titles (units in brackets).
function plotLayout(xTitle, yTitle, extra = {}) {
  const axis = { gridcolor: "#243049", zerolinecolor: "#2c3850", linecolor: "#3d4d6d" };
  return {
    paper_bgcolor: "#0f1420", plot_bgcolor: "#111a2a", font: { color: "#dde3ee", size: 12 },
    margin: { l: 60, r: 20, t: 10, b: 45 }, showlegend: true,
    legend: { orientation: "h", y: 1.12, x: 0 },
    xaxis: { ...axis, title: { text: xTitle } }, yaxis: { ...axis, title: { text: yTitle } },
    ...extra,
  };
}
const PLOT_CONFIG = { responsive: true, displaylogo: false };
const LABEL_COLOURS = { good: "#3ddc84", medium: "#f2c94c", bad: "#eb5757" };

// Every page calls this once: draws the header, finds out who is here, then runs `start`.
async function page(start) {
  renderHeader();
  await loadMe();
  await start();
}
