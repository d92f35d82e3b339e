// The Candidates page: new candidates, newest first, with labelled new / reference / difference
// cutouts, real/bogus score and nearby known sources; an operator saves (promotes to a source),
// rejects, or calls one an asteroid or a variable. Filters and the page live in the URL.
"use strict";

const VERDICTS = [
  ["real", "save", "Save as a source"],
  ["bogus", "reject", "Reject (bogus)"],
  ["asteroid", "asteroid", "A moving object"],
  ["variable", "variable", "A known variable"],
];

function chosen() {
  const query = new URLSearchParams(location.search);
  return {
    site_id: query.get("site_id") || "",
    hours: query.get("hours") || "",
    min_real_bogus: query.get("min_real_bogus") || "0",
    limit: Number(query.get("limit") || 20),
    offset: Number(query.get("offset") || 0),
  };
}

function apiQuery(filters) {
  const query = new URLSearchParams({
    min_real_bogus: filters.min_real_bogus, limit: filters.limit, offset: filters.offset,
  });
  if (filters.site_id) query.set("site_id", filters.site_id);
  if (filters.hours) query.set("since", new Date(Date.now() - filters.hours * 3600e3).toISOString());
  return query;
}

function go(filters) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) if (value !== "" && value !== 0) query.set(key, value);
  history.replaceState(null, "", `?${query}`);
  load();
}

function card(c) {
  const element = document.createElement("article");
  element.className = "card";
  element.dataset.targetId = c.target_id;
  const nearby = c.nearby.length
    ? c.nearby.map((n) => `<a href="/sources/${n.target_id}">${esc(n.name)}</a> (${esc(n.status)}, ${fmt(n.separation_arcsec, 1)}″)`).join(", ")
    : "none known";
  const magnitude = c.mag === null ? "not calibrated" : `${fmt(c.mag)} ± ${fmt(c.mag_err)} ${esc(c.filter || "")}`;
  element.innerHTML = `
    <h3><a href="/sources/${c.target_id}">${esc(c.target_name)}</a> <small>${esc(c.site_id)}</small></h3>
    <dl class="facts">
      <dt>observed</dt><dd>${esc(c.observed_at.replace("T", " ").slice(0, 19))} UTC · MJD ${fmt(mjd(c.observed_at), 4)}</dd>
      <dt>position</dt><dd>${fmt(c.ra_deg, 5)}°, ${fmt(c.dec_deg, 5)}°</dd>
      <dt>magnitude</dt><dd>${magnitude}</dd>
      <dt>real/bogus</dt><dd class="rb">${fmt(c.real_bogus)} <small>S/N ${fmt(c.snr, 1)}</small></dd>
      <dt>nearby</dt><dd class="nearby">${nearby}</dd>
      <dt>label</dt><dd class="label">${esc(c.label || "–")}</dd>
    </dl>
    <div class="buttons"></div>`;
  element.insertBefore(stampsFigure(c.message_id), element.querySelector(".facts"));
  const buttons = element.querySelector(".buttons");
  for (const [label, name, title] of VERDICTS) {
    const button = document.createElement("button");
    button.className = `action ${name}`;
    button.type = "button";
    button.textContent = name;
    button.title = title;
    button.onclick = () => judge(c, label, element);
    buttons.append(button);
  }
  return element;
}

async function judge(c, label, element) {
  try {
    await act(`/api/targets/${c.target_id}/label`, { label });
    element.remove();
    $("#message").textContent = `${c.target_name}: ${label}`;
    await load();
  } catch (error) {
    $("#message").textContent = `${c.target_name}: ${error.message}`;
  }
}

async function load() {
  const filters = chosen();
  $("#f-site").value = filters.site_id;
  $("#f-hours").value = filters.hours;
  $("#f-rb").value = filters.min_real_bogus;
  $("#f-limit").value = String(filters.limit);
  try {
    const page = await getJSON(`/api/candidates?${apiQuery(filters)}`);
    $("#count").textContent = `${page.total} to scan`;
    const list = $("#candidates");
    list.replaceChildren(...page.items.map(card));
    if (!page.items.length) list.textContent = "No candidates match.";
    const last = Math.min(page.offset + page.limit, page.total);
    $("#page-of").textContent = page.total ? `${page.offset + 1}–${last} of ${page.total}` : "";
    $("#prev").disabled = page.offset === 0;
    $("#next").disabled = last >= page.total;
    list.dataset.loaded = "true";
  } catch (error) {
    $("#message").textContent = error.message;
  }
}

page(async () => {
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    go({ site_id: $("#f-site").value.trim(), hours: $("#f-hours").value,
      min_real_bogus: $("#f-rb").value, limit: Number($("#f-limit").value), offset: 0 });
  });
  $("#prev").onclick = () => { const f = chosen(); go({ ...f, offset: Math.max(0, f.offset - f.limit) }); };
  $("#next").onclick = () => { const f = chosen(); go({ ...f, offset: f.offset + f.limit }); };
  document.addEventListener("skyfleet:login", load);
  await load();
  setLive(true, "loaded");
});
