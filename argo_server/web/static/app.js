// ARGO monitor: hash-routed views over the read-only JSON API; refreshes itself every second.
"use strict";
const REFRESH_MS = 1000;
const $ = (sel) => document.querySelector(sel);
const short = (s, prefix) => (s || "").replace(prefix, "");
const jobState = (s) => short(s, "JOB_STATE_") || "-";
const stepState = (s) => short(s, "STEP_STATE_") || "-";
const when = (t) => (t ? new Date(t).toLocaleString() : "-");
let pageTokens = [""];  // token of each page seen, for Newer/Older
let timer = null;
let lastRender = "";

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

async function api(path) {
  const res = await fetch(path, { headers: authHeaders() });
  if (res.status === 401) {
    // The server wants a token (or refused this one): ask for it; it lives only in this tab.
    sessionStorage.removeItem("argo-token");
    showSignIn(true);
    throw new Error("sign in with your API token (argo-server token create)");
  }
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function showSignIn(needed) {
  $("#signin").hidden = !needed;
  $("#signout").hidden = needed || !sessionStorage.getItem("argo-token");
  if (needed) $("#token-input").focus();
}

function authHeaders() {
  const token = sessionStorage.getItem("argo-token");
  return token ? { Authorization: "Bearer " + token } : {};
}

function filters() {
  const params = new URLSearchParams();
  for (const el of document.querySelectorAll("#filters [name]")) if (el.value) params.set(el.name, el.value);
  return params;
}

async function renderJobs() {
  const params = filters();
  params.set("page_token", pageTokens[pageTokens.length - 1]);
  const data = await api("/api/jobs?" + params);
  const key = JSON.stringify(data);
  if (key === lastRender) return;
  lastRender = key;
  const body = $("#jobs tbody");
  body.replaceChildren();
  for (const job of data.jobs) {
    const id = short(job.name, "jobs/");
    const tr = document.createElement("tr");
    tr.dataset.job = id;
    const a = document.createElement("a");
    a.href = "#/jobs/" + id;
    a.textContent = id;
    cell(tr, "").appendChild(a);
    cell(tr, job.owner || "");
    cell(tr, job.group_identifier || "");
    cell(tr, jobState(job.state), "state " + jobState(job.state));
    const steps = job.steps || [];
    cell(tr, steps.filter((s) => s.state === "STEP_STATE_SUCCEEDED").length + "/" + steps.length);
    cell(tr, [...new Set(steps.map((s) => s.target_site))].join(", "));
    cell(tr, when(job.create_time));
    body.appendChild(tr);
  }
  $("#next").disabled = !data.next_page_token;
  $("#next").dataset.token = data.next_page_token || "";
  $("#prev").disabled = pageTokens.length <= 1;
  $("#page-no").textContent = "page " + pageTokens.length;
}

async function renderJob(id) {
  const [job, history] = await Promise.all([api("/api/jobs/" + id), api("/api/jobs/" + id + "/events")]);
  const key = JSON.stringify([job, history]);
  if (key === lastRender) return;
  lastRender = key;
  $("#job-title").textContent = "Job " + id;
  const summary = $("#job-summary");
  summary.replaceChildren();
  const st = document.createElement("span");
  st.id = "job-state";
  st.className = "state " + jobState(job.state);
  st.textContent = jobState(job.state);
  summary.append(st, ` · owner ${job.owner || "-"} · group ${job.group_identifier || "-"} · created ${when(job.create_time)}`
    + (job.state_reason ? ` · ${job.state_reason}` : ""));
  const body = $("#steps tbody");
  body.replaceChildren();
  const times = [];
  for (const s of job.steps || []) {
    const tr = document.createElement("tr");
    tr.dataset.step = s.index || 0;
    cell(tr, String(s.index || 0));
    cell(tr, s.target_site);
    cell(tr, s.executable || (s.executable_args || [])[0] || "");
    cell(tr, stepState(s.state), "state " + stepState(s.state));
    cell(tr, String(s.attempt || 0));
    cell(tr, s.scheduler_id || "-");
    cell(tr, s.exit_code === undefined ? "-" : String(s.exit_code));
    cell(tr, when(s.dispatch_time));
    cell(tr, when(s.start_time));
    cell(tr, when(s.end_time));
    cell(tr, s.state_reason || "");
    body.appendChild(tr);
    times.push(s);
  }
  renderTimeline(times, job);
  const events = $("#events tbody");
  events.replaceChildren();
  for (const e of history.events) {
    const tr = document.createElement("tr");
    cell(tr, when(e.time));
    cell(tr, e.step_index === -1 || e.step_index === undefined && !e.step_state ? "job" : String(e.step_index || 0));
    cell(tr, e.step_state ? `${stepState(e.previous_step_state)} → ${stepState(e.step_state)}` : jobState(e.job_state));
    cell(tr, String(e.attempt || ""));
    cell(tr, e.site || "");
    cell(tr, e.reason || "");
    events.appendChild(tr);
  }
}

function renderTimeline(steps, job) {
  const box = $("#timeline");
  box.replaceChildren();
  const t0 = Date.parse(job.create_time || new Date());
  const now = Date.now();
  const tEnd = Math.max(now, ...steps.map((s) => Date.parse(s.end_time || 0) || 0));
  const span = Math.max(1, tEnd - t0);
  for (const s of steps) {
    const row = document.createElement("div");
    row.className = "timeline-row";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = `step ${s.index || 0} @ ${s.target_site}`;
    const track = document.createElement("span");
    track.className = "track";
    const start = Date.parse(s.dispatch_time || s.start_time || 0);
    if (start) {
      const end = Date.parse(s.end_time || 0) || now;
      const bar = document.createElement("span");
      bar.className = "bar " + stepState(s.state);
      bar.style.marginLeft = ((start - t0) / span) * 100 + "%";
      bar.style.width = Math.max(0.5, ((end - start) / span) * 100) + "%";
      bar.title = `${stepState(s.state)}: ${when(s.dispatch_time)} → ${when(s.end_time)}`;
      track.appendChild(bar);
    }
    row.append(label, track);
    box.appendChild(row);
  }
}

async function renderSites() {
  const data = await api("/api/sites");
  const key = JSON.stringify(data);
  if (key === lastRender) return;
  lastRender = key;
  const body = $("#sites tbody");
  body.replaceChildren();
  for (const s of data.sites) {
    const tr = document.createElement("tr");
    tr.dataset.site = short(s.name, "sites/");
    cell(tr, short(s.name, "sites/"));
    cell(tr, s.online ? "online" : "offline", s.online ? "online" : "offline");
    cell(tr, when(s.last_heartbeat_time));
    cell(tr, s.agent_version || "-");
    cell(tr, s.scheduler || "-");
    cell(tr, String((s.capacity || {}).active_steps || 0));
    cell(tr, (s.plugins || []).map((p) => `${p.name} ${p.version}`).join(", "));
    body.appendChild(tr);
  }
}

function route() {
  const hash = location.hash || "#/";
  for (const v of ["#jobs-view", "#job-view", "#sites-view"]) $(v).hidden = true;
  lastRender = "";
  let render;
  const m = hash.match(/^#\/jobs\/([^/]+)$/);
  if (m) { $("#job-view").hidden = false; render = () => renderJob(m[1]); }
  else if (hash === "#/sites") { $("#sites-view").hidden = false; render = renderSites; }
  else { $("#jobs-view").hidden = false; render = renderJobs; }
  const tick = async () => {
    try { await render(); $("#status").textContent = "updated " + new Date().toLocaleTimeString(); }
    catch (err) { $("#status").textContent = "error: " + err.message; }
  };
  clearInterval(timer);
  tick();
  timer = setInterval(tick, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#filters").addEventListener("input", () => { pageTokens = [""]; lastRender = ""; route(); });
  $("#filters").addEventListener("submit", (e) => e.preventDefault());
  $("#next").addEventListener("click", () => { pageTokens.push($("#next").dataset.token); route(); });
  $("#prev").addEventListener("click", () => { if (pageTokens.length > 1) pageTokens.pop(); route(); });
  window.addEventListener("hashchange", route);
  $("#signin").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("#token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem("argo-token", token);
    $("#token-input").value = "";
    showSignIn(false);
    lastRender = "";
    route();
  });
  $("#signout").addEventListener("click", () => {
    sessionStorage.removeItem("argo-token");
    lastRender = "";
    showSignIn(true);
    route();
  });
  showSignIn(false);
  route();
});
