// Shared by every console page: the header (navigation, live badge, login), the signed-in
// user, JSON fetching, actions with the session's CSRF token, and number formatting.
"use strict";

const $ = (selector) => document.querySelector(selector);
const fmt = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(100 * v)}%`);
const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

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

// Every page calls this once: draws the header, finds out who is here, then runs `start`.
async function page(start) {
  renderHeader();
  await loadMe();
  await start();
}
