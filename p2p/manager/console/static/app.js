// dfly console: a small single-page app over the manager's /api/v1 (no other origin, no libraries).
"use strict";

const TOKEN_KEY = "dfly.session";
const REFRESH_MS = 2000;
let refreshTimer = null;
let viewSeq = 0; // bumps on every navigation so a slow response never paints over a newer page

// ---- DOM helpers (text only: never innerHTML with data) -----------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function badge(state) { return h("span", { class: `badge ${state}`, "data-state": state }, state); }
function bytes(n) {
  if (n < 0) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
function when(ts) { return ts ? new Date(ts).toLocaleString() : "—"; }
function rtt(ns) { return ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : `${(ns / 1e3).toFixed(0)} µs`; }
function main() { return document.getElementById("main"); }

function toast(text) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 2500);
}

function table(columns, rows, empty, testid) {
  const head = h("tr", {}, columns.map((c) => h("th", {}, c.title)));
  const body = rows.length
    ? rows.map((r) => h("tr", { "data-id": r.id }, columns.map((c) => h("td", {}, c.cell(r)))))
    : [h("tr", {}, h("td", { class: "empty", colspan: columns.length }, empty))];
  return h("table", { "data-testid": testid }, h("thead", {}, head), h("tbody", {}, body));
}

// ---- API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(`/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "omit",
  });
  if (resp.status === 401 && path !== "/users/signin") {
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = "#/signin";
    throw new ApiError(401, "signed out");
  }
  const data = resp.status === 204 ? null : await resp.json();
  if (!resp.ok) throw new ApiError(resp.status, (data && data.message) || resp.statusText);
  return data;
}

async function listAll(path) {
  const sep = path.includes("?") ? "&" : "?";
  return api("GET", `${path}${sep}per_page=1000`);
}

// ---- router ----------------------------------------------------------------------------------

const routes = [
  [/^#\/signin$/, viewSignIn],
  [/^#\/clusters$/, viewClusters],
  [/^#\/clusters\/new$/, (seq) => viewClusterForm(seq, null)],
  [/^#\/clusters\/(\d+)$/, viewCluster],
  [/^#\/clusters\/(\d+)\/edit$/, (seq, id) => viewClusterForm(seq, id)],
  [/^#\/clusters\/(\d+)\/tasks$/, viewClusterTasks],
  [/^#\/tokens$/, viewTokens],
  [/^#\/jobs$/, viewJobs],
  [/^#\/jobs\/(\d+)$/, viewJob],
];

async function route() {
  clearInterval(refreshTimer);
  document.getElementById("toast").hidden = true;
  const seq = ++viewSeq;
  const signedIn = Boolean(sessionStorage.getItem(TOKEN_KEY));
  let hash = location.hash || "#/clusters";
  if (!signedIn && hash !== "#/signin") { location.hash = "#/signin"; return; }
  if (signedIn && hash === "#/signin") hash = "#/clusters";
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("who").hidden = !signedIn;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", hash.startsWith(`#/${a.dataset.nav}`));
  }
  const found = routes.find(([re]) => re.test(hash));
  if (!found) { location.hash = "#/clusters"; return; }
  const args = hash.match(found[0]).slice(1);
  try {
    await found[1](seq, ...args);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    if (seq === viewSeq) main().replaceChildren(h("div", { class: "panel error" }, `Error: ${err.message}`));
  }
}

function paint(seq, ...nodes) {
  if (seq !== viewSeq) return false;
  main().replaceChildren(...nodes);
  return true;
}

function every(seq, fn) {
  refreshTimer = setInterval(() => {
    if (seq !== viewSeq) return;
    fn().catch(() => {});
  }, REFRESH_MS);
}

// ---- sign in ---------------------------------------------------------------------------------

async function viewSignIn(seq) {
  const err = h("div", { class: "error", "data-testid": "signin-error" });
  const form = h("form", {},
    h("label", { for: "username" }, "User name"),
    h("input", { id: "username", name: "username", value: "root", autocomplete: "username" }),
    h("label", { for: "password" }, "Password"),
    h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password" }),
    err, h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const out = await api("POST", "/users/signin", {
        name: form.elements.namedItem("username").value, password: form.elements.namedItem("password").value });
      sessionStorage.setItem(TOKEN_KEY, out.token);
      document.getElementById("who-name").textContent = out.user.name;
      location.hash = "#/clusters";
    } catch (e) { err.textContent = e.message; }
  });
  paint(seq, h("div", { class: "signin panel" }, h("h1", {}, "Sign in to dfly"), form));
}

// ---- clusters --------------------------------------------------------------------------------

async function viewClusters(seq) {
  const render = async () => {
    const clusters = await listAll("/clusters");
    paint(seq,
      h("h1", {}, "Clusters", h("span", { class: "spacer" }),
        h("a", { class: "button", href: "#/clusters/new", "data-testid": "new-cluster" }, "Create cluster")),
      table([
        { title: "Name", cell: (c) => h("a", { href: `#/clusters/${c.id}` }, c.name) },
        { title: "Bio", cell: (c) => c.bio || "—" },
        { title: "Schedulers", cell: (c) => `${c.active_scheduler_count} active / ${c.scheduler_count}` },
        { title: "Seed peers", cell: (c) => `${c.active_seed_peer_count} active / ${c.seed_peer_count}` },
        { title: "Default", cell: (c) => (c.is_default ? "yes" : "") },
        { title: "Created", cell: (c) => when(c.created_at) },
      ], clusters, "No clusters yet.", "clusters"));
  };
  await render();
  every(seq, render);
}

function stateTable(rows, kind, onFeatures) {
  const cols = [
    { title: "Host", cell: (r) => r.host_name },
    { title: "Address", cell: (r) => `${r.ip}:${r.port}` },
    { title: "State", cell: (r) => badge(r.state) },
    { title: "Last keepalive", cell: (r) => when(r.last_keepalive_at) },
  ];
  if (kind === "scheduler") {
    cols.push({ title: "Features", cell: (r) => h("div", { class: "checks" }, ["schedule", "preheat"].map((f) =>
      h("label", {}, h("input", {
        type: "checkbox", "data-feature": f, checked: r.features.includes(f),
        onchange: (ev) => onFeatures(r, f, ev.target.checked),
      }), f))) });
  } else {
    cols.splice(2, 0, { title: "Type", cell: (r) => r.type });
  }
  return table(cols, rows, kind === "scheduler" ? "No schedulers registered." : "No seed peers registered.",
    kind === "scheduler" ? "schedulers" : "seed-peers");
}

async function viewCluster(seq, id) {
  const setFeature = async (sched, feature, on) => {
    const features = new Set(sched.features);
    if (on) features.add(feature); else features.delete(feature);
    await api("PATCH", `/schedulers/${sched.id}`, { features: [...features] });
    toast(`${sched.host_name}: ${feature} ${on ? "enabled" : "disabled"}`);
    await render();
  };
  const remove = async (cluster) => {
    if (!confirm(`Delete cluster ${cluster.name}?`)) return;
    try {
      await api("DELETE", `/clusters/${cluster.id}`);
      toast("Cluster deleted");
      location.hash = "#/clusters";
    } catch (e) { toast(e.message); }
  };
  const render = async () => {
    const c = await api("GET", `/clusters/${id}`);
    const [schedulers, seeds] = await Promise.all([
      listAll(`/schedulers?scheduler_cluster_id=${id}`),
      listAll(`/seed-peers?seed_peer_cluster_id=${c.seed_peer_cluster_id}`),
    ]);
    const scopes = c.scopes || {};
    paint(seq,
      h("h1", {}, c.name, c.is_default ? h("span", { class: "badge" }, "default") : null, h("span", { class: "spacer" }),
        h("a", { class: "button", href: `#/clusters/${id}/edit` }, "Edit"),
        h("button", { class: "danger", "data-testid": "delete-cluster", onclick: () => remove(c) }, "Delete")),
      h("div", { class: "tabs" }, h("a", { class: "active", href: `#/clusters/${id}` }, "Overview"),
        h("a", { href: `#/clusters/${id}/tasks` }, "Tasks and peers")),
      h("div", { class: "panel kv" },
        h("div", {}, "Bio"), h("div", {}, c.bio || "—"),
        h("div", {}, "Scopes"), h("div", {}, `idc: ${scopes.idc || "—"} · location: ${scopes.location || "—"} · cidrs: ${(scopes.cidrs || []).join(", ") || "—"}`),
        h("div", {}, "Candidate parent limit"), h("div", {}, c.scheduler_cluster_config.candidate_parent_limit),
        h("div", {}, "Filter parent limit"), h("div", {}, c.scheduler_cluster_config.filter_parent_limit),
        h("div", {}, "Seed peer load limit"), h("div", {}, c.seed_peer_cluster_config.load_limit),
        h("div", {}, "Peer load limit"), h("div", {}, c.peer_cluster_config.load_limit)),
      h("h2", {}, `Schedulers (${c.active_scheduler_count} active)`),
      stateTable(schedulers, "scheduler", setFeature),
      h("h2", {}, `Seed peers (${c.active_seed_peer_count} active)`),
      stateTable(seeds, "seed"));
  };
  await render();
  every(seq, render);
}

async function viewClusterForm(seq, id) {
  const c = id ? await api("GET", `/clusters/${id}`) : null;
  const v = (x, d) => (x === undefined || x === null ? d : x);
  const field = (label, name, value, type = "text") => [
    h("label", { for: name }, label), h("input", { id: name, name, type, value: v(value, "") })];
  const err = h("div", { class: "error", "data-testid": "form-error" });
  const form = h("form", { class: "grid panel" },
    field("Name", "cname", c && c.name),
    field("Bio", "bio", c && c.bio),
    field("Scope IDC", "idc", c && c.scopes.idc),
    field("Scope location", "location", c && c.scopes.location),
    field("Scope CIDRs (comma separated)", "cidrs", c && (c.scopes.cidrs || []).join(", ")),
    field("Candidate parent limit", "candidate_parent_limit", c ? c.scheduler_cluster_config.candidate_parent_limit : 4, "number"),
    field("Filter parent limit", "filter_parent_limit", c ? c.scheduler_cluster_config.filter_parent_limit : 40, "number"),
    field("Seed peer load limit", "seed_load_limit", c ? c.seed_peer_cluster_config.load_limit : 300, "number"),
    field("Peer load limit", "peer_load_limit", c ? c.peer_cluster_config.load_limit : 50, "number"),
    h("label", { for: "is_default" }, "Default cluster"),
    h("input", { id: "is_default", name: "is_default", type: "checkbox", checked: Boolean(c && c.is_default) }),
    h("div", {}), err,
    h("div", { class: "actions" }, h("button", { type: "submit" }, id ? "Save" : "Create"),
      h("a", { class: "button secondary", href: id ? `#/clusters/${id}` : "#/clusters" }, "Cancel")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = form.elements;
    const body = {
      name: f.cname.value.trim(), bio: f.bio.value, is_default: f.is_default.checked,
      scopes: { idc: f.idc.value.trim(), location: f.location.value.trim(),
        cidrs: f.cidrs.value.split(",").map((s) => s.trim()).filter(Boolean) },
      scheduler_cluster_config: { candidate_parent_limit: Number(f.candidate_parent_limit.value),
        filter_parent_limit: Number(f.filter_parent_limit.value) },
      seed_peer_cluster_config: { load_limit: Number(f.seed_load_limit.value) },
      peer_cluster_config: { load_limit: Number(f.peer_load_limit.value), concurrent_piece_count: 4 },
    };
    try {
      const out = id ? await api("PATCH", `/clusters/${id}`, body) : await api("POST", "/clusters", body);
      toast(id ? "Cluster saved" : "Cluster created");
      location.hash = `#/clusters/${out.id}`;
    } catch (e) { err.textContent = e.message; }
  });
  paint(seq, h("h1", {}, id ? `Edit cluster ${c.name}` : "Create cluster"), form);
}

async function viewClusterTasks(seq, id) {
  const render = async () => {
    const [c, tasks, peers, edges] = await Promise.all([
      api("GET", `/clusters/${id}`), listAll(`/clusters/${id}/tasks`), listAll(`/clusters/${id}/peers`),
      listAll(`/clusters/${id}/topology`)]);
    const hostCell = (name, addr, hid) => h("span", { title: hid }, `${name} ${addr}`.trim() || hid.slice(0, 12));
    paint(seq,
      h("h1", {}, c.name),
      h("div", { class: "tabs" }, h("a", { href: `#/clusters/${id}` }, "Overview"),
        h("a", { class: "active", href: `#/clusters/${id}/tasks` }, "Tasks and peers")),
      h("p", { class: "muted" }, "As last reported by the cluster's schedulers with their keepalive."),
      h("h2", {}, `Tasks (${tasks.length})`),
      table([
        { title: "Task", cell: (t) => h("span", { class: "mono" }, t.id) },
        { title: "URL", cell: (t) => t.url },
        { title: "State", cell: (t) => badge(t.state || "unknown") },
        { title: "Size", cell: (t) => bytes(t.content_length) },
        { title: "Peers", cell: (t) => t.peer_count },
      ], tasks, "No tasks reported.", "tasks"),
      h("h2", {}, `Peers (${peers.length})`),
      table([
        { title: "Peer", cell: (p) => h("span", { class: "mono" }, p.id) },
        { title: "Task", cell: (p) => h("span", { class: "mono" }, p.task_id) },
        { title: "Host", cell: (p) => `${p.host_name} ${p.ip}`.trim() || "—" },
        { title: "State", cell: (p) => badge(p.state || "unknown") },
      ], peers, "No peers reported.", "peers"),
      h("h2", {}, `Network topology (${edges.length})`),
      table([
        { title: "From", cell: (e) => hostCell(e.src_host_name, e.src_address, e.src_host_id) },
        { title: "To", cell: (e) => hostCell(e.dest_host_name, e.dest_address, e.dest_host_id) },
        { title: "Average RTT", cell: (e) => rtt(e.average_rtt_ns) },
        { title: "Probes", cell: (e) => e.probe_count },
        { title: "Updated", cell: (e) => when(e.updated_at_ns / 1e6) },
      ], edges, "No probes reported (network topology is off, or no daemon probed yet).", "topology"));
  };
  await render();
  every(seq, render);
}

// ---- personal access tokens ------------------------------------------------------------------

async function viewTokens(seq, created) {
  const tokens = await listAll("/personal-access-tokens");
  const err = h("div", { class: "error", "data-testid": "token-error" });
  const tomorrow = new Date(Date.now() + 30 * 864e5).toISOString().slice(0, 10);
  const form = h("form", { class: "grid panel" },
    h("label", { for: "tname" }, "Name"), h("input", { id: "tname", name: "tname" }),
    h("label", { for: "tbio" }, "Description"), h("input", { id: "tbio", name: "tbio" }),
    h("label", {}, "Scopes"),
    h("div", { class: "checks" }, ["job", "cluster", "preheat"].map((s) =>
      h("label", {}, h("input", { type: "checkbox", name: "scope", value: s, checked: s === "job" }), s))),
    h("label", { for: "texp" }, "Expires"), h("input", { id: "texp", name: "texp", type: "date", value: tomorrow }),
    h("div", {}), err,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create token")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const scopes = [...form.querySelectorAll("input[name=scope]:checked")].map((i) => i.value);
    const body = { name: form.tname.value.trim(), bio: form.tbio.value, scopes,
      expired_at: new Date(`${form.texp.value}T23:59:59Z`).toISOString() };
    try {
      const out = await api("POST", "/personal-access-tokens", body);
      await viewTokens(seq, out); // the only time the token value exists in the page
    } catch (e) { err.textContent = e.message; }
  });
  const revoke = async (t) => {
    await api("PATCH", `/personal-access-tokens/${t.id}`, { state: "inactive" });
    toast(`Token ${t.name} revoked`);
    await viewTokens(seq);
  };
  const once = created ? h("div", { class: "panel notice", "data-testid": "new-token" },
    h("p", {}, `Token "${created.name}" created. Copy it now: it will not be shown again.`),
    h("div", { class: "row" }, h("code", { class: "secret", "data-testid": "token-value" }, created.token),
      h("button", { type: "button", "data-testid": "copy-token", onclick: (ev) => copyText(created.token, ev.target) }, "Copy"))) : null;
  paint(seq,
    h("h1", {}, "Personal access tokens"),
    once,
    table([
      { title: "Name", cell: (t) => t.name },
      { title: "Scopes", cell: (t) => t.scopes.join(", ") },
      { title: "State", cell: (t) => badge(t.state) },
      { title: "Expires", cell: (t) => when(t.expired_at) },
      { title: "Ends in", cell: (t) => h("span", { class: "mono" }, `…${t.token_hint}`) },
      { title: "", cell: (t) => (t.state === "active"
        ? h("button", { class: "danger", "data-testid": "revoke", onclick: () => revoke(t) }, "Revoke") : "") },
    ], tokens, "No tokens yet.", "tokens"),
    h("h2", {}, "Create a token"), form);
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h("textarea", {}, text);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "Copied";
}

// ---- preheat jobs ----------------------------------------------------------------------------

function progress(job) {
  const runs = job.result.scheduler_clusters;
  const done = runs.filter((r) => r.state === "SUCCESS" || r.state === "FAILURE").length;
  const pct = runs.length ? Math.round((4 * done) / runs.length) * 25 : 0;
  const bar = h("div", { class: `p${pct} ${job.state === "FAILURE" ? "fail" : ""}` });
  return h("div", { class: "row" }, h("div", { class: "progress" }, bar), `${done}/${runs.length}`);
}

async function viewJobs(seq) {
  const clusters = await listAll("/clusters");
  const err = h("div", { class: "error", "data-testid": "job-error" });
  const form = h("form", { class: "grid panel" },
    h("label", { for: "purl" }, "URL"),
    h("input", { id: "purl", name: "purl", placeholder: "dfs://bucket/key, s3://bucket/key or https://…" }),
    h("label", {}, "Clusters"),
    h("div", { class: "checks" }, clusters.map((c) =>
      h("label", {}, h("input", { type: "checkbox", name: "cluster", value: c.id }), c.name))),
    h("label", { for: "jbio" }, "Description"), h("input", { id: "jbio", name: "jbio" }),
    h("div", {}), err,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Start preheat")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const ids = [...form.querySelectorAll("input[name=cluster]:checked")].map((i) => Number(i.value));
    try {
      const job = await api("POST", "/jobs", { type: "preheat", bio: form.jbio.value,
        args: { type: "file", url: form.purl.value.trim() }, scheduler_cluster_ids: ids });
      location.hash = `#/jobs/${job.id}`;
    } catch (e) { err.textContent = e.message; }
  });
  const list = h("div", {});
  const render = async () => {
    const jobs = await api("GET", "/jobs?per_page=50");
    list.replaceChildren(table([
      { title: "Job", cell: (j) => h("a", { href: `#/jobs/${j.id}` }, `#${j.id}`) },
      { title: "URL", cell: (j) => j.args.url },
      { title: "State", cell: (j) => badge(j.state) },
      { title: "Progress", cell: progress },
      { title: "Created", cell: (j) => when(j.created_at) },
    ], jobs, "No preheat jobs yet.", "jobs"));
  };
  await render();
  paint(seq, h("h1", {}, "Preheat"), h("h2", {}, "Start a preheat"), form, h("h2", {}, "Jobs"), list);
  every(seq, render);
}

async function viewJob(seq, id) {
  const clusters = Object.fromEntries((await listAll("/clusters")).map((c) => [c.id, c.name]));
  const render = async () => {
    const j = await api("GET", `/jobs/${id}`);
    paint(seq,
      h("h1", {}, `Preheat #${j.id}`, badge(j.state)),
      h("div", { class: "panel kv", "data-testid": "job" },
        h("div", {}, "URL"), h("div", {}, j.args.url),
        h("div", {}, "Description"), h("div", {}, j.bio || "—"),
        h("div", {}, "Progress"), h("div", {}, progress(j)),
        h("div", {}, "Created"), h("div", {}, when(j.created_at)),
        h("div", {}, "Updated"), h("div", {}, when(j.updated_at))),
      h("h2", {}, "Per cluster"),
      table([
        { title: "Cluster", cell: (r) => clusters[r.scheduler_cluster_id] || `#${r.scheduler_cluster_id}` },
        { title: "Scheduler", cell: (r) => (r.scheduler_id ? `#${r.scheduler_id}` : "—") },
        { title: "State", cell: (r) => badge(r.state) },
        { title: "Message", cell: (r) => r.message || "—" },
        { title: "Updated", cell: (r) => when(r.updated_at) },
      ], j.result.scheduler_clusters, "No clusters.", "job-runs"),
      h("p", {}, h("a", { href: "#/jobs" }, "← All jobs")));
    return j.state === "SUCCESS" || j.state === "FAILURE";
  };
  if (await render()) return; // finished jobs do not change any more
  every(seq, async () => { if (await render()) clearInterval(refreshTimer); });
}

// ---- start -----------------------------------------------------------------------------------

document.getElementById("signout").addEventListener("click", async () => {
  try { await api("POST", "/users/signout"); } catch { /* signed out either way */ }
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = "#/signin";
});

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", async () => {
  if (sessionStorage.getItem(TOKEN_KEY)) {
    try { document.getElementById("who-name").textContent = (await api("GET", "/users/me")).name; } catch { /* 401 handled */ }
  }
  route();
});
