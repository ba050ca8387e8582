// The Sessions view of the diagnostics page (issue #21): the --admin-path API as a live
// table, refreshed once a second, sortable, a close button and a throughput sparkline per
// session. No dependencies. The API needs its own credentials (never --web-auth's); a
// POST carries X-Websockify-Admin: 1, as the API requires.

const REFRESH_MS = 1000;
const SPARK_POINTS = 30; // one per refresh: the last 30 seconds
const $ = (id) => document.getElementById(id);

const view = {
  adminPath: null,
  rows: [], // the last answer's sessions
  history: new Map(), // id -> [{at, bytes}] for the sparklines
  sort: { key: "id", down: false },
  lastError: null,
  timer: null,
  closed: [], // ids closed from this page
};
window.sessionsView = view;

function authorization() {
  return "Basic " + btoa(`${$("admin-user").value}:${$("admin-password").value}`);
}

function bytesText(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function secondsText(s) {
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

async function refresh() {
  let response;
  try {
    response = await fetch(`${view.adminPath}/sessions`, {
      // The header also keeps the 401 free of WWW-Authenticate: no browser prompt.
      headers: { Authorization: authorization(), "X-Websockify-Admin": "1" }, cache: "no-store",
    });
  } catch (err) {
    return showError(`${err}`);
  }
  if (!response.ok) return showError(await errorText(response));
  const { sessions } = await response.json();
  view.lastError = null;
  view.rows = sessions;
  remember(sessions);
  $("sessions-status").textContent = `${sessions.length} session${sessions.length === 1 ? "" : "s"}`;
  render();
}

async function errorText(response) {
  let detail = "";
  try {
    detail = (await response.json()).error;
  } catch (err) {
    detail = response.statusText;
  }
  return `${response.status}: ${detail}`;
}

function showError(text) {
  view.lastError = text;
  $("sessions-status").textContent = text;
}

function remember(sessions) {
  const now = performance.now();
  const live = new Set();
  for (const s of sessions) {
    live.add(s.id);
    const points = view.history.get(s.id) || [];
    points.push({ at: now, bytes: s.bytes_from_client + s.bytes_from_target });
    if (points.length > SPARK_POINTS + 1) points.shift();
    view.history.set(s.id, points);
  }
  for (const id of view.history.keys()) if (!live.has(id)) view.history.delete(id);
}

function sorted(rows) {
  const { key, down } = view.sort;
  return [...rows].sort((a, b) => {
    const x = a[key] ?? "", y = b[key] ?? "";
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return down ? -order : order;
  });
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function render() {
  const body = $("sessions").tBodies[0];
  body.replaceChildren();
  for (const s of sorted(view.rows)) {
    const row = body.insertRow();
    row.dataset.id = s.id;
    row.dataset.peerPort = s.peer_port ?? "";
    cell(row, s.id);
    cell(row, s.client);
    cell(row, s.target ?? "–");
    cell(row, s.token ?? "–");
    cell(row, s.subprotocol ?? "–");
    cell(row, s.tls ? "yes" : "no");
    cell(row, s.time.replace("T", " ").replace("Z", ""));
    cell(row, secondsText(s.duration));
    cell(row, bytesText(s.bytes_from_target));
    cell(row, bytesText(s.bytes_from_client));
    cell(row, s.messages_from_target);
    cell(row, s.messages_from_client);
    cell(row, secondsText(s.idle));
    cell(row, s.pid);
    const canvas = document.createElement("canvas");
    canvas.width = 90;
    canvas.height = 18;
    canvas.className = "spark";
    cell(row, "").appendChild(canvas);
    drawSpark(canvas, view.history.get(s.id) || []);
    const button = document.createElement("button");
    button.textContent = "Close";
    button.className = "close-session";
    button.addEventListener("click", () => closeSession(s.id, button));
    cell(row, "").appendChild(button);
  }
  for (const th of $("sessions").tHead.rows[0].cells) {
    th.classList.toggle("sorted-up", th.dataset.key === view.sort.key && !view.sort.down);
    th.classList.toggle("sorted-down", th.dataset.key === view.sort.key && view.sort.down);
  }
}

// Bytes per second either way between refreshes, scaled to the session's own peak.
function drawSpark(canvas, points) {
  const ctx = canvas.getContext("2d");
  const rates = [];
  for (let i = 1; i < points.length; i += 1) {
    const seconds = Math.max(0.001, (points[i].at - points[i - 1].at) / 1000);
    rates.push((points[i].bytes - points[i - 1].bytes) / seconds);
  }
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (rates.length < 1) return;
  const peak = Math.max(1, ...rates);
  const step = canvas.width / Math.max(1, SPARK_POINTS - 1);
  const x0 = canvas.width - (rates.length - 1) * step;
  ctx.strokeStyle = "#1f77b4";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  rates.forEach((rate, i) => {
    const y = canvas.height - 1 - (rate / peak) * (canvas.height - 2);
    if (i === 0) ctx.moveTo(x0, y);
    else ctx.lineTo(x0 + i * step, y);
  });
  if (rates.length === 1) ctx.lineTo(canvas.width, canvas.height - 1 - (rates[0] / peak) * (canvas.height - 2));
  ctx.stroke();
}

async function closeSession(id, button) {
  button.disabled = true;
  try {
    const response = await fetch(`${view.adminPath}/sessions/${id}/close`, {
      method: "POST",
      headers: { Authorization: authorization(), "X-Websockify-Admin": "1" },
      cache: "no-store",
    });
    if (!response.ok) return showError(await errorText(response));
    view.closed.push(id);
  } catch (err) {
    showError(`${err}`);
  }
  refresh();
}

function watch() {
  if (view.timer !== null) clearInterval(view.timer);
  refresh();
  view.timer = setInterval(refresh, REFRESH_MS);
}

async function start() {
  let config;
  try {
    config = await (await fetch("config.json", { cache: "no-store" })).json();
  } catch (err) {
    return;
  }
  if (!config.adminPath) return; // no --admin-path: no Sessions view
  view.adminPath = config.adminPath === "/" ? "" : config.adminPath;
  $("sessions-view").hidden = false;
  $("admin-watch").addEventListener("click", watch);
  for (const th of $("sessions").tHead.rows[0].cells) {
    if (!th.dataset.key) continue;
    th.addEventListener("click", () => {
      const down = view.sort.key === th.dataset.key ? !view.sort.down : false;
      view.sort = { key: th.dataset.key, down };
      render();
    });
  }
}

start();
