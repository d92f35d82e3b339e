// The Follow-ups page: the queue filtered by state, site and target, with each request's
// progress at its site (queued → observing k/N → done / failed with the reason); operators
// re-prioritise and cancel (the dispatcher sends the site a command, which it acknowledges).
"use strict";

const OPEN_STATES = ["sent", "accepted", "observing", "cancelling"];
const ACTIVE_STATES = ["sent", "accepted", "observing"];
const PAGE_SIZE = 50;

function chosen() {
  const query = new URLSearchParams(location.search);
  return {
    state: query.get("state") || "", site_id: query.get("site_id") || "",
    target_id: query.get("target_id") || "", offset: Number(query.get("offset") || 0),
  };
}

function go(filters) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) if (value !== "" && value !== 0) query.set(key, value);
  history.replaceState(null, "", `?${query}`);
  load();
}

function apiQuery(filters) {
  const query = new URLSearchParams({ limit: PAGE_SIZE, offset: filters.offset });
  const states = filters.state === "open" ? OPEN_STATES : filters.state ? [filters.state] : [];
  for (const state of states) query.append("state", state);
  if (filters.site_id) query.set("site_id", filters.site_id);
  if (filters.target_id) query.set("target_id", filters.target_id);
  return query;
}

function row(f) {
  const tr = document.createElement("tr");
  tr.dataset.requestId = f.request_id;
  const total = f.exposures_total ?? f.plan?.count ?? "?";
  const plan = f.plan ? `${f.plan.count}×${f.plan.exptime_s}s ${esc(f.plan.filter)}` : "–";
  tr.innerHTML = `<td>${esc(f.request_id)}</td><td><a href="/sources/${f.target_id}">${esc(f.target_name)}</a></td>
    <td>${esc(f.site_id)}</td><td><span class="state ${esc(f.state)}">${esc(f.state)}</span></td>
    <td class="progress">${f.exposures_done}/${total}</td><td>${plan}</td><td class="priority">${f.priority}</td>
    <td>${esc(f.sent_at.slice(0, 19).replace("T", " "))}</td><td>${esc(f.updated_at.slice(11, 19))}</td>
    <td>${esc(f.reason)}</td><td class="action"></td>`;
  if (ACTIVE_STATES.includes(f.state)) {
    const cell = tr.lastElementChild;
    const urgent = document.createElement("button");
    urgent.type = "button"; urgent.className = "action more-urgent"; urgent.textContent = "priority ↑";
    urgent.disabled = f.priority <= 1;
    urgent.onclick = () => change(`/api/followups/${encodeURIComponent(f.request_id)}/priority`, { priority: f.priority - 1 });
    const cancel = document.createElement("button");
    cancel.type = "button"; cancel.className = "action cancel"; cancel.textContent = "cancel";
    cancel.onclick = () => change(`/api/followups/${encodeURIComponent(f.request_id)}/cancel`, {});
    cell.append(urgent, " ", cancel);
  }
  return tr;
}

async function change(path, body) {
  try {
    await act(path, body);
    $("#message").textContent = "";
  } catch (error) {
    $("#message").textContent = error.message;
  }
  await load();
}

async function load() {
  const filters = chosen();
  $("#f-state").value = filters.state;
  $("#f-site").value = filters.site_id;
  $("#f-target").value = filters.target_id;
  try {
    const response = await fetch(`/api/followups?${apiQuery(filters)}`);
    if (!response.ok) throw new Error((await response.json()).detail || response.statusText);
    const items = await response.json();
    const total = Number(response.headers.get("X-Total-Count") || items.length);
    $("#count").textContent = `${total} requests`;
    $("#queue tbody").replaceChildren(...items.map(row));
    const last = Math.min(filters.offset + PAGE_SIZE, total);
    $("#page-of").textContent = total ? `${filters.offset + 1}–${last} of ${total}` : "none";
    $("#prev").disabled = filters.offset === 0;
    $("#next").disabled = last >= total;
    $("#queue").dataset.loaded = "true";
  } catch (error) {
    $("#message").textContent = error.message;
  }
}

page(async () => {
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    go({ state: $("#f-state").value, site_id: $("#f-site").value.trim(), target_id: $("#f-target").value, offset: 0 });
  });
  $("#prev").onclick = () => { const f = chosen(); go({ ...f, offset: Math.max(0, f.offset - PAGE_SIZE) }); };
  $("#next").onclick = () => { const f = chosen(); go({ ...f, offset: f.offset + PAGE_SIZE }); };
  document.addEventListener("skyfleet:login", load);
  await load();
  followLive(load);
});
