// Shared by the candidate and source pages: labelled new / reference / difference cutouts drawn
// on canvases from `/api/cutouts/<message_id>`, and time as Modified Julian Date.
"use strict";

const STAMP_KINDS = [["new", "new"], ["reference", "ref"], ["difference", "diff"]];
const MJD_AT_UNIX_EPOCH = 40587;
const MS_PER_DAY = 86400000;

const mjd = (iso) => Date.parse(iso) / MS_PER_DAY + MJD_AT_UNIX_EPOCH;

// One stamp as grey levels between its 2nd and 98th percentiles (a bright core stays visible
// without one hot pixel flattening the rest); the difference is symmetric around zero.
function drawStamp(canvas, rows, symmetric) {
  const height = rows.length, width = rows[0].length;
  const values = rows.flat().slice().sort((a, b) => a - b);
  const at = (q) => values[Math.min(values.length - 1, Math.floor(q * values.length))];
  let low = at(0.02), high = at(0.98);
  if (symmetric) { high = Math.max(Math.abs(low), Math.abs(high)); low = -high; }
  const span = high - low || 1;
  canvas.width = width; canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  rows.forEach((row, y) => row.forEach((v, x) => {
    const grey = Math.round(255 * Math.min(1, Math.max(0, (v - low) / span)));
    const i = 4 * (y * width + x);
    image.data.set([grey, grey, grey, 255], i);
  }));
  context.putImageData(image, 0, 0);
}

// A figure of three labelled stamps for one detection, filled in when its cutouts arrive.
function stampsFigure(messageId) {
  const figure = document.createElement("div");
  figure.className = "stamps";
  figure.dataset.messageId = messageId;
  figure.innerHTML = STAMP_KINDS.map(([kind, label]) =>
    `<figure><canvas class="${kind}" title="${label}"></canvas><figcaption>${label}</figcaption></figure>`).join("");
  getJSON(`/api/cutouts/${encodeURIComponent(messageId)}`).then((stamps) => {
    for (const [kind] of STAMP_KINDS) {
      drawStamp(figure.querySelector(`canvas.${kind}`), stamps[kind], kind === "difference");
    }
    figure.classList.add("drawn");
  }).catch((error) => { figure.textContent = `cutouts: ${error.message}`; });
  return figure;
}

const REFRESH_MS = 5000;
// Live: the fleet summary's server-sent events light the header badge and call `onChange`
// (a follow-up's state changes the summary); a follow-up's exposures k/N do not, so the page
// also asks again every `REFRESH_MS`.
function followLive(onChange) {
  const events = new EventSource("/api/events");
  events.addEventListener("summary", () => { setLive(true, "live"); onChange(); });
  events.onerror = () => setLive(false, "reconnecting…");
  setInterval(onChange, REFRESH_MS);
}
