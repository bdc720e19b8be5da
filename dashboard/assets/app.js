// rkube dashboard: plain JS, no framework, no build step. The server streams every kind's rows over one
// EventSource (/api/stream: init, apply, ready, delete, problem per kind); a pod's page fetches its inspection
// (/api/inspect/pods/NS/NAME, the document of `rkube inspect pod -o json`) and its trace (/api/trace/pods/NS/NAME,
// `rkube trace pod -o json`'s steps with their words) and draws them, the trace kept live by a second
// EventSource (/api/trace/pods/NS/NAME/follow: the steps `rkube trace pod --follow` prints); a node's page `rkube inspect node`'s
// document (/api/inspect/nodes/NAME), a Service's page `rkube inspect service`'s (/api/inspect/services/NS/NAME).
// Every value from the cluster goes into the page as text (textContent, SVG text nodes), never as markup.
"use strict";

const KINDS = ["nodes", "pods", "services", "events"];
// per kind: key -> {row, live}; live: the row came from the watch after the list (created or changed since)
const store = Object.fromEntries(KINDS.map((k) => [k, new Map()]));
const ready = Object.fromEntries(KINDS.map((k) => [k, false]));
const SVG = "http://www.w3.org/2000/svg";

// ---------------------------------------------------------------------------------------------------------
// small DOM helpers

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") e.textContent = String(v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  }
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function age(ts) {
  if (!ts) return "";
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  if (s < 120) return s + "s";
  if (s < 7200) return Math.floor(s / 60) + "m";
  if (s < 172800) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? v : v.toFixed(1)) + " " + units[i];
}

function showProblem(message) {
  const p = document.getElementById("problem");
  p.textContent = message;
  p.hidden = !message;
}

// ---------------------------------------------------------------------------------------------------------
// the live stream

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/api/stream");
  es.onopen = () => {
    conn.dataset.state = "live";
    conn.textContent = "live";
  };
  es.onerror = () => {
    conn.dataset.state = "reconnecting";
    conn.textContent = "reconnecting…";
  };
  for (const kind of KINDS) {
    es.addEventListener(kind, (ev) => {
      let u;
      try {
        u = JSON.parse(ev.data);
      } catch (e) {
        showProblem(kind + ": unreadable update: " + e);
        return;
      }
      apply(kind, u);
    });
  }
}

function apply(kind, u) {
  const m = store[kind];
  switch (u.op) {
    case "init":
      m.clear();
      ready[kind] = false;
      document.body.dataset[kind + "Ready"] = "false";
      break;
    case "apply":
      m.set(u.key, { row: u.row, live: !u.initial });
      break;
    case "delete":
      m.delete(u.key);
      break;
    case "ready":
      ready[kind] = true;
      document.body.dataset[kind + "Ready"] = "true";
      showProblem("");
      break;
    case "problem":
      showProblem("watch " + kind + ": " + u.message + " (retrying)");
      return;
    default:
      return;
  }
  scheduleRender();
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render(false);
  });
}

// ---------------------------------------------------------------------------------------------------------
// tables

const COLUMNS = {
  pods: [
    ["Namespace", (r) => r.namespace],
    ["Name", (r) => el("a", { href: "#/pod/" + encodeURIComponent(r.namespace) + "/" + encodeURIComponent(r.name), text: r.name })],
    ["Ready", (r) => r.ready],
    ["Status", (r) => el("span", { class: "status s-" + r.status.toLowerCase(), text: r.status })],
    ["Restarts", (r) => r.restarts],
    ["IP", (r) => r.podIp || ""],
    ["Node", (r) => r.node || ""],
    ["Age", (r) => age(r.created)],
  ],
  nodes: [
    ["Name", (r) => el("a", { href: "#/node/" + encodeURIComponent(r.name), text: r.name })],
    ["Status", (r) => el("span", { class: "status s-" + r.status.split(/[ ,]/)[0].toLowerCase(), text: r.status })],
    ["Internal IP", (r) => r.internalIp || ""],
    ["Pod CIDR", (r) => r.podCidr || ""],
    ["Kubelet", (r) => r.kubeletVersion || ""],
    ["Age", (r) => age(r.created)],
  ],
  services: [
    ["Namespace", (r) => r.namespace],
    ["Name", (r) => el("a", { href: "#/service/" + encodeURIComponent(r.namespace) + "/" + encodeURIComponent(r.name), text: r.name })],
    ["Type", (r) => r.type],
    ["Cluster IP", (r) => r.clusterIp || ""],
    ["Ports", (r) => r.ports],
    ["Selector", (r) => r.selector],
    ["Age", (r) => age(r.created)],
  ],
  events: [
    ["Last seen", (r) => age(r.lastSeen)],
    ["Namespace", (r) => r.namespace],
    ["Type", (r) => el("span", { class: "status s-" + String(r.type || "").toLowerCase(), text: r.type || "" })],
    ["Reason", (r) => r.reason || ""],
    ["Object", (r) => r.object],
    ["Message", (r) => r.message || ""],
    ["Count", (r) => (r.count === null || r.count === undefined ? "" : r.count)],
  ],
};

function sortedEntries(kind) {
  const entries = [...store[kind].entries()];
  if (kind === "events") {
    entries.sort((a, b) => String(b[1].row.lastSeen || "").localeCompare(String(a[1].row.lastSeen || "")));
    return entries.slice(0, 300);
  }
  entries.sort((a, b) => a[0].localeCompare(b[0]));
  return entries;
}

function table(kind) {
  const cols = COLUMNS[kind];
  const head = el("tr", {}, cols.map(([h]) => el("th", { text: h })));
  const rows = sortedEntries(kind).map(([key, { row, live }]) =>
    el("tr", { "data-key": key, "data-live": live ? "true" : "false" }, cols.map(([, f]) => el("td", {}, f(row)))),
  );
  const t = el("table", { id: kind + "-table", "data-kind": kind }, el("thead", {}, head), el("tbody", {}, rows));
  const note = !ready[kind]
    ? el("p", { class: "muted", text: "Listing " + kind + "…" })
    : rows.length === 0
      ? el("p", { class: "muted", text: "No " + kind + "." })
      : null;
  return [el("h2", { text: kind[0].toUpperCase() + kind.slice(1) + " (" + store[kind].size + ")" }), t, note];
}

// ---------------------------------------------------------------------------------------------------------
// views: #/pods, #/nodes, #/services, #/events, #/pod/NS/NAME, #/node/NAME, #/service/NS/NAME

// a detail page's view -> the list its nav link is
const PARENT = { pod: "pods", node: "nodes", service: "services" };

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "pod" && parts.length === 3) return { view: "pod", namespace: parts[1], name: parts[2] };
  if (parts[0] === "service" && parts.length === 3) return { view: "service", namespace: parts[1], name: parts[2] };
  if (parts[0] === "node" && parts.length === 2) return { view: "node", name: parts[1] };
  if (KINDS.includes(parts[0])) return { view: parts[0] };
  return { view: "pods" };
}

// documents fetched for the detail page shown, by slot (inspect, trace): {key, doc, error}
let detail = {};

// The document of `url` in slot `slot` for `key`, fetched once per navigation (or when `force`d); null doc and
// error while it loads. A forced fetch of the page already shown keeps its document on screen until the new one
// is in (a pod's live trace ending refetches its inspection: the page blinked to "Asking node's kubelet…").
function want(slot, key, url, force) {
  const cur = detail[slot];
  if (!force && cur && cur.key === key) return cur;
  const kept = cur && cur.key === key && cur.doc ? cur.doc : null;
  const d = { key, doc: kept, error: null };
  detail[slot] = d;
  fetchJson(url).then(({ doc, error }) => {
    if (detail[slot] === d) {
      d.doc = doc;
      d.error = error;
      scheduleRender();
    }
  });
  return d;
}

async function fetchJson(url) {
  try {
    const resp = await fetch(url, { credentials: "same-origin" });
    const body = await resp.json().catch(() => ({ error: "HTTP " + resp.status }));
    return resp.ok ? { doc: body, error: null } : { doc: null, error: body.error || "HTTP " + resp.status };
  } catch (e) {
    return { doc: null, error: String(e) };
  }
}

function render(navigated) {
  const r = route();
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("current", a.dataset.view === r.view || a.dataset.view === PARENT[r.view]);
  }
  const main = document.getElementById("main");
  const enc = encodeURIComponent;
  if (r.view !== "pod") stopFollowing();
  if (!PARENT[r.view]) {
    detail = {};
    main.replaceChildren(...table(r.view).filter((x) => x));
    return;
  }
  const key = r.view + ":" + (r.namespace ? r.namespace + "/" : "") + r.name;
  let page;
  if (r.view === "pod") {
    const path = enc(r.namespace) + "/" + enc(r.name);
    want("inspect", key, "/api/inspect/pods/" + path, navigated);
    want("trace", key, "/api/trace/pods/" + path, navigated);
    followTrace(key, path);
    page = podPage(r.namespace, r.name);
  } else if (r.view === "node") {
    want("inspect", key, "/api/inspect/nodes/" + enc(r.name), navigated);
    page = nodePage(r.name);
  } else {
    want("inspect", key, "/api/inspect/services/" + enc(r.namespace) + "/" + enc(r.name), navigated);
    page = servicePage(r.namespace, r.name);
  }
  main.replaceChildren(...page.filter((x) => x));
}

// A Refresh button that fetches the page's documents again.
function refreshButton(id) {
  const b = el("button", { id, type: "button", text: "Refresh" });
  b.addEventListener("click", () => render(true));
  return b;
}

// ---------------------------------------------------------------------------------------------------------
// a pod's page

function podPage(namespace, name) {
  const key = namespace + "/" + name;
  const entry = store.pods.get(key);
  const row = entry ? entry.row : null;
  const out = [
    el("h2", {}, "Pod ", el("span", { id: "pod-name", text: key })),
    el(
      "p",
      { class: "muted" },
      row ? row.status + " on " : "",
      row && row.node ? el("a", { href: "#/node/" + encodeURIComponent(row.node), text: row.node }) : row ? "no node yet" : "",
      row ? (row.podIp ? ", IP " + row.podIp : "") + ", ready " + row.ready : "",
      " ",
      refreshButton("pod-refresh"),
    ),
  ];
  const v = detail.inspect;
  if (!v || (!v.doc && !v.error)) {
    out.push(el("p", { class: "muted", id: "pod-loading", text: "Asking node's kubelet…" }));
  } else if (v.error) {
    out.push(el("p", { class: "error", id: "pod-error", text: v.error }));
  } else {
    out.push(podInspection(v.doc));
  }
  out.push(el("h3", { text: "Trace: the pod's path through the control plane and its node" }), liveStatus(liveTrace),
    traceSection(detail.trace, liveTrace));
  return out;
}

function podInspection(d) {
  return el("section", { id: "pod-inspection", "data-uid": d.metadata.uid }, [
    el("h3", { text: "Network: from the Service rules to the pod's interface" }),
    networkDiagram(d),
    el("h3", { text: "Namespaces: which processes share which" }),
    namespaceTable(d),
    el("h3", { text: "Containers: cgroups, rootfs, volumes" }),
    ...d.containers.map(containerCard),
    el("h3", { text: "Sandbox" }),
    el("p", {}, "id ", el("code", { text: d.sandbox.id }), ", pid ", el("code", { "data-testid": "sandbox-pid", text: d.sandbox.pid }), ", ",
      el("code", { text: d.sandbox.command.join(" ") })),
    el("p", {}, "QoS class ", el("strong", { text: d.qosClass }), " on node ", el("strong", { text: d.metadata.node })),
  ]);
}

// ---------------------------------------------------------------------------------------------------------
// a pod's live trace: the steps `rkube trace pod --follow` hands over, in order, each once (SSE events `trace`,
// op waiting, started, steps, note, done, problem), kept beside the fetched trace and merged with it when drawn.
// It ends when the pod is Ready, finished or failed (done), or the follow fails (problem): then the EventSource
// is closed, or it would reconnect and follow again.

// {key, es, state: connecting | waiting | following | reconnecting | done | ended, traceId, note, end, steps}
let liveTrace = null;

function followTrace(key, path) {
  if (liveTrace && liveTrace.key === key) return;
  stopFollowing();
  const lt = { key, es: null, state: "connecting", traceId: null, note: null, end: null, steps: [] };
  const url = "/api/trace/pods/" + path;
  lt.es = new EventSource(url + "/follow");
  lt.es.addEventListener("trace", (ev) => {
    let u;
    try {
      u = JSON.parse(ev.data);
    } catch (e) {
      u = { op: "note", message: "unreadable trace update: " + e };
    }
    if (u.op === "waiting") lt.state = "waiting";
    else if (u.op === "started") {
      lt.state = "following";
      lt.traceId = u.traceId;
    } else if (u.op === "steps") u.steps.forEach((st, i) => lt.steps.push({ step: st, label: u.labels[i] }));
    else if (u.op === "note") lt.note = u.message;
    else if (u.op === "done" || u.op === "problem") {
      lt.state = u.op === "done" ? "done" : "ended";
      lt.end = u.op === "done" ? u.what : u.message;
      lt.es.close();
      // the whole trace once more, as `rkube trace pod` reads it now (the node it ran on, steps after the last),
      // and the inspection: a pod followed from before it existed has started now
      if (liveTrace === lt) {
        want("trace", key, url, true);
        if (u.op === "done") want("inspect", key, "/api/inspect/pods/" + path, true);
      }
    }
    if (liveTrace === lt) scheduleRender();
  });
  lt.es.onerror = () => {
    if (lt.state === "done" || lt.state === "ended") return;
    lt.state = "reconnecting";
    if (liveTrace === lt) scheduleRender();
  };
  liveTrace = lt;
}

function stopFollowing() {
  if (liveTrace) liveTrace.es.close();
  liveTrace = null;
}

function liveStatus(lt) {
  if (!lt) return null;
  const text = {
    connecting: "Following the trace…",
    waiting: "Waiting for the pod to be created; its steps will appear here as they are recorded.",
    following: "Live: new steps appear as they are recorded.",
    reconnecting: "Live: reconnecting…",
    done: "Followed until the pod was " + lt.end + ".",
    ended: "No longer following: " + lt.end,
  }[lt.state];
  return el("p", { class: lt.state === "ended" ? "small error" : "small muted", id: "trace-live", "data-state": lt.state, text });
}

// The fetched trace's steps and the live ones, each once (by span id and kind), in start order (a stable sort:
// the fetched ones keep `rkube trace pod`'s order), with their words.
function mergedSteps(doc, lt) {
  const seen = new Set();
  const items = [];
  const add = (step, label) => {
    const k = step.spanId + "/" + step.kind;
    if (seen.has(k)) return;
    seen.add(k);
    items.push({ step, label: label || { title: step.name, details: "" } });
  };
  if (doc) (doc.trace.steps || []).forEach((st, i) => add(st, doc.labels[i]));
  if (lt) lt.steps.forEach((x) => add(x.step, x.label));
  items.sort((a, b) => a.step.startUnixNanos - b.step.startUnixNanos);
  return items;
}

// ---------------------------------------------------------------------------------------------------------
// a pod's trace as a timeline: one row per step (spans as bars, events as dots) on one time axis, from the first
// step; the words are `rkube trace pod`'s

function traceSection(t, lt) {
  const live = lt ? lt.steps.length : 0;
  if (live === 0 && (!t || (!t.doc && !t.error))) return el("p", { class: "muted", id: "trace-loading", text: "Reading the trace…" });
  if (live === 0 && t.error) return el("p", { class: "error", id: "trace-error", text: t.error });
  const doc = t && t.doc ? t.doc : null;
  const trace = doc ? doc.trace : { traceId: lt.traceId || "", node: null, exists: true };
  const warning = (doc && doc.warning) || (lt && lt.note);
  const items = mergedSteps(doc, lt);
  const steps = items.map((x) => x.step);
  const labels = items.map((x) => x.label);
  const head = el("p", { class: "small" }, "trace ", el("code", { id: "trace-id", text: trace.traceId }),
    trace.node ? ", node " + trace.node : "", trace.exists ? "" : " (the pod is gone; its steps are kept)",
    ", " + steps.length + " steps");
  const warn = warning ? el("p", { class: "error", id: "trace-warning", text: warning }) : null;
  if (steps.length === 0) return el("section", { id: "pod-trace" }, head, warn, el("p", { class: "muted", text: "No steps recorded." }));
  const first = steps[0].startUnixNanos;
  const end = Math.max(...steps.map((s) => s.startUnixNanos + (s.durationNanos || 0)));
  const total = Math.max(1, end - first);
  const W = 1100;
  const labelW = 560;
  const axisW = W - labelW - 30;
  const rowH = 22;
  const H = 34 + steps.length * rowH;
  const s = svg("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, class: "diagram timeline", role: "img", "aria-label": "the pod's trace" });
  const x = (ns) => labelW + (axisW * (ns - first)) / total;
  // the axis: 0, a quarter, half, three quarters, the end
  for (let i = 0; i <= 4; i++) {
    const at = first + (total * i) / 4;
    s.append(svg("line", { x1: x(at), y1: 18, x2: x(at), y2: H - 4, class: "tick" }));
    s.append(svg("text", { x: x(at), y: 13, class: "tick-label", "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, "+" + ms(at - first)));
  }
  steps.forEach((st, i) => {
    const y = 24 + i * rowH;
    const lab = labels[i] || { title: st.name, details: "" };
    const g = svg("g", { class: "step c-" + st.component, "data-testid": "trace-step-" + i, "data-name": st.name, "data-component": st.component, "data-kind": st.kind });
    g.append(svg("title", {}, lab.title + (lab.details ? " (" + lab.details + ")" : "")));
    g.append(svg("text", { x: 4, y: y + 14, class: "step-offset" }, "+" + ms(st.startUnixNanos - first)));
    g.append(svg("text", { x: 74, y: y + 14, class: "step-component" }, st.component));
    const label = lab.title.length > 62 ? lab.title.slice(0, 61) + "…" : lab.title;
    g.append(svg("text", { x: 190, y: y + 14, class: "step-title" }, label));
    if (st.kind === "span") {
      const w = Math.max(2, x(st.startUnixNanos + (st.durationNanos || 0)) - x(st.startUnixNanos));
      g.append(svg("rect", { x: x(st.startUnixNanos), y: y + 3, width: w, height: rowH - 8, rx: 3, class: "bar" }));
      g.append(svg("text", { x: Math.min(x(st.startUnixNanos) + w + 4, W - 60), y: y + 14, class: "step-dur" }, ms(st.durationNanos || 0)));
    } else {
      g.append(svg("circle", { cx: x(st.startUnixNanos), cy: y + rowH / 2 - 1, r: 4, class: "dot" }));
    }
    s.append(g);
  });
  // the same steps as text: the details the bars cannot hold
  const rows = steps.map((st, i) =>
    el("tr", {}, el("td", { text: "+" + ms(st.startUnixNanos - first) }), el("td", { text: st.component }),
      el("td", { text: st.durationNanos !== undefined && st.durationNanos !== null ? ms(st.durationNanos) : "" }),
      el("td", { text: (labels[i] || {}).title || st.name }), el("td", { class: "small", text: (labels[i] || {}).details || "" })));
  const tbl = el("table", { class: "steps small", id: "trace-steps" },
    el("thead", {}, el("tr", {}, ["at", "component", "took", "step", "details"].map((h) => el("th", { text: h })))), el("tbody", {}, rows));
  return el("section", { id: "pod-trace", "data-trace-id": trace.traceId }, head, warn, s, tbl);
}

function ms(nanos) {
  const v = nanos / 1e6;
  return v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(1) + " ms";
}

// ---------------------------------------------------------------------------------------------------------
// a node's page: the API's conditions and addresses (live, from the stream), the kubelet's inspection

function loadingOrError(v, prefix) {
  if (!v || (!v.doc && !v.error)) return el("p", { class: "muted", id: prefix + "-loading", text: "Asking the node's kubelet…" });
  if (v.error) return el("p", { class: "error", id: prefix + "-error", text: v.error });
  return null;
}

function cpuText(nanos, milli) {
  const parts = [];
  if (nanos !== null && nanos !== undefined) parts.push((nanos / 1e9).toFixed(2) + " s used");
  if (milli !== null && milli !== undefined) parts.push(milli + "m now");
  return parts.length ? "CPU " + parts.join(", ") : "CPU –";
}

// Ready is healthy when True; the pressure conditions (MemoryPressure, DiskPressure, PIDPressure,
// NetworkUnavailable) when False.
function healthy(c) {
  return c.type === "Ready" ? c.status === "True" : c.status === "False";
}

function nodePage(name) {
  const entry = store.nodes.get(name);
  const row = entry ? entry.row : null;
  const out = [
    el("h2", {}, "Node ", el("span", { id: "node-name", text: name })),
    el("p", { class: "muted" }, row ? row.status + (row.kubeletVersion ? ", kubelet " + row.kubeletVersion : "") : ready.nodes ? "not in the list" : "", " ", refreshButton("node-refresh")),
  ];
  if (row) {
    out.push(el("h3", { text: "Conditions" }),
      el("table", { id: "node-conditions" },
        el("thead", {}, el("tr", {}, ["type", "status", "reason", "message", "last heartbeat"].map((h) => el("th", { text: h })))),
        el("tbody", {}, (row.conditions || []).map((c) => el("tr", { "data-condition": c.type },
          el("td", { text: c.type }), el("td", { class: "status s-" + (healthy(c) ? "ready" : "warning"), text: c.status }),
          el("td", { text: c.reason || "" }), el("td", { class: "small", text: c.message || "" }), el("td", { text: c.lastHeartbeat ? age(c.lastHeartbeat) + " ago" : "" }))))),
      el("p", { id: "node-addresses" }, "Addresses: ", (row.addresses || []).map((a) => el("span", { class: "addr", "data-type": a.type }, a.type + " ", el("code", { text: a.address }), "  "))));
  }
  const v = detail.inspect;
  const wait = loadingOrError(v, "node");
  if (wait) {
    out.push(wait);
    return out;
  }
  const d = v.doc;
  const br = d.bridge;
  const p = d.proxy;
  const byClass = (path) => d.pods.filter((x) => x.cgroup.slice(0, x.cgroup.lastIndexOf("/")) === path);
  out.push(el("section", { id: "node-inspection" },
    el("h3", { text: "Pod network" }),
    el("p", {}, "pod CIDR ", el("code", { id: "node-pod-cidr", text: d.podCidr || "none" }), ", bridge ",
      br ? [el("code", { id: "node-bridge", text: br.name }), " ifindex " + br.ifindex + ", mac " + br.mac + ", " + ((br.addresses || []).join(" ") || "no address")] : "none"),
    el("p", {}, "routes to other nodes' pods: " + (d.podRoutes.length ? "" : "none")),
    d.podRoutes.length ? el("ul", { id: "node-routes" }, d.podRoutes.map((r) => el("li", {}, el("code", { text: r.dst + (r.gateway ? " via " + r.gateway : "") + (r.dev ? " dev " + r.dev : "") })))) : null,
    el("p", {}, "cluster DNS " + (d.dns.address || "none") + (d.dns.link ? " on " + d.dns.link + " (" + d.dns.linkAddresses.join(" ") + ")" : "")),
    el("h3", { text: "Service proxy" }),
    el("p", { id: "node-proxy" }, p.table
      ? ["table ", el("code", { text: "ip " + p.table }),
        (p.tables || []).length > 1 ? " and " + (p.tables.length - 1) + " shard tables (" + p.tables.slice(1).join(", ") + ")" : "",
        ": " + p.chains + " chains, " + p.rules + " rules, " + p.servicePorts + " service ports, " + p.endpoints + " endpoints, " + p.serviceIps + " service IPs, " + p.nodePorts + " NodePorts"]
      : "no service proxy on this node"),
    el("h3", { text: "cgroups: the QoS tree" + (d.cgroups.cpuSampleMillis ? " (CPU now: over " + d.cgroups.cpuSampleMillis + " ms)" : "") }),
    el("div", { id: "node-cgroups" }, d.cgroups.classes.map((c) => el("div", { class: "card qos", "data-qos": c.qosClass },
      el("h4", {}, c.qosClass + " ", el("code", { text: c.path })),
      el("p", { class: "small" }, bytes(c.memoryWorkingSetBytes) + " in use, " + cpuText(c.cpuUsageNanos, c.cpuMillicores)),
      podsTable(byClass(c.path))))),
  ));
  return out;
}

function podsTable(pods) {
  if (!pods.length) return el("p", { class: "muted small", text: "no pods" });
  const head = el("tr", {}, ["pod", "sandbox", "sandbox pid", "IP", "memory", "CPU", "cgroup"].map((h) => el("th", { text: h })));
  const rows = pods.map((p) => el("tr", { "data-pod": p.namespace + "/" + p.name },
    el("td", {}, el("a", { href: "#/pod/" + encodeURIComponent(p.namespace) + "/" + encodeURIComponent(p.name), text: p.namespace + "/" + p.name })),
    el("td", {}, el("code", { text: p.sandboxId || "none" })),
    el("td", { "data-testid": "sandbox-pid", text: p.sandboxPid ?? "–" }),
    el("td", { text: (p.podIp || "") + (p.hostNetwork ? " (host network)" : "") }),
    el("td", { text: bytes(p.memoryWorkingSetBytes) }),
    el("td", { text: cpuText(p.cpuUsageNanos, p.cpuMillicores) }),
    el("td", {}, el("code", { text: p.cgroup }))));
  return el("table", { class: "small" }, el("thead", {}, head), el("tbody", {}, rows));
}

// ---------------------------------------------------------------------------------------------------------
// a Service's page: its addresses and ports, per port the chains and the endpoints its numgen vmap picks

function servicePage(namespace, name) {
  const key = namespace + "/" + name;
  const entry = store.services.get(key);
  const row = entry ? entry.row : null;
  const out = [
    el("h2", {}, "Service ", el("span", { id: "service-name", text: key })),
    el("p", { class: "muted" }, row ? row.type + ", ports " + row.ports + (row.selector ? ", selector " + row.selector : ", no selector") : "", " ", refreshButton("service-refresh")),
  ];
  const v = detail.inspect;
  const wait = loadingOrError(v, "service");
  if (wait) {
    out.push(wait);
    return out;
  }
  const d = v.doc;
  out.push(el("section", { id: "service-inspection" },
    el("p", {}, d.type + " ", el("span", { id: "service-vips" }, d.clusterIps.map((ip) => el("code", { class: "vip", text: ip }))),
      " as node ", el("a", { href: "#/node/" + encodeURIComponent(d.metadata.node), text: d.metadata.node }),
      "'s proxy has it" + (d.table ? " (table ip " + d.table + ")" : ": no service proxy there")),
    d.ports.length === 0 ? el("p", { class: "muted", id: "service-no-rules", text: "No rules for it in the table: no ready endpoints, or not synced yet." }) : null,
    d.ports.map((p, i) => el("div", { class: "card port", "data-port": p.port },
      el("h4", {}, "port " + p.port),
      el("p", { class: "small" }, "from ", [].concat(p.serviceIps, p.nodePorts.map((n) => "NodePort " + n)).join(", ") || "nothing"),
      el("p", { class: "small" }, "chain ", el("code", { "data-testid": "svc-chain-" + i, text: p.serviceChain || "none" }),
        p.otherChains.length ? ", and " + p.otherChains.join(", ") : ""),
      servicePicks(p)))));
  return out;
}

// The service chain's picks as an SVG: the chain on the left, one arrow per numgen slot to its endpoint chain
// and the address its DNAT sends to.
function servicePicks(p) {
  const eps = p.endpoints || [];
  if (!eps.length) return el("p", { class: "muted small", text: "no endpoints" });
  const W = 1100;
  const rowH = 44;
  const H = 20 + eps.length * rowH;
  const s = svg("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, class: "diagram picks" });
  const cy = H / 2;
  s.append(svg("rect", { x: 10, y: cy - 22, width: 300, height: 44, rx: 8, class: "chain" }));
  s.append(svg("text", { x: 20, y: cy - 3, class: "title" }, p.serviceChain || "?"));
  s.append(svg("text", { x: 20, y: cy + 14 }, "numgen random mod " + eps.length));
  eps.forEach((e, i) => {
    const y = 10 + i * rowH;
    s.append(svg("path", { d: "M 310 " + cy + " C 380 " + cy + ", 380 " + (y + 20) + ", 450 " + (y + 20), class: "wire" }));
    s.append(svg("text", { x: 360, y: y + 16, class: "wire-label" }, e.slot === null || e.slot === undefined ? "" : "slot " + e.slot));
    const g = svg("g", { "data-testid": "svc-pick", "data-endpoint": e.endpoint, "data-slot": e.slot ?? "" });
    g.append(svg("rect", { x: 450, y: y + 2, width: 620, height: 36, rx: 6, class: "endpoint" }));
    g.append(svg("text", { x: 460, y: y + 17 }, e.chain));
    g.append(svg("text", { x: 460, y: y + 32, class: "title" }, "DNAT → " + e.endpoint));
    s.append(g);
  });
  return s;
}

function nsOf(list, type) {
  return (list || []).find((n) => n.type === type);
}

// The network path as an SVG: Service rules (left) -> node bridge -> host veth -> pod eth0 inside the pod's
// network namespace (right), each box with its kernel names and numbers.
function networkDiagram(d) {
  const n = d.network;
  const rules = d.serviceRules.endpoints || [];
  const W = 1100;
  const boxH = 96;
  const rulesH = Math.max(1, rules.length) * 110;
  const H = Math.max(260, rulesH + 40);
  const s = svg("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, class: "diagram", role: "img", "aria-label": "network path of the pod" });
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }));
  defs.append(marker);
  s.append(defs);

  // title: a string, or [prefix, value, testid]: the value in its own tspan, for the tests to find
  const box = (x, y, w, h, cls, title, lines, testids) => {
    const g = svg("g", { class: "box " + cls });
    g.append(svg("rect", { x, y, width: w, height: h, rx: 8 }));
    const t = svg("text", { x: x + 10, y: y + 20, class: "title" }, Array.isArray(title) ? title[0] : title);
    if (Array.isArray(title)) t.append(svg("tspan", { "data-testid": title[2] }, title[1]));
    g.append(t);
    lines.forEach((l, i) => g.append(svg("text", { x: x + 10, y: y + 40 + i * 17, "data-testid": (testids || [])[i] }, l)));
    s.append(g);
    return { x, y, w, h };
  };
  const arrow = (a, b, label) => {
    const x1 = a.x + a.w;
    const y1 = a.y + a.h / 2;
    const x2 = b.x;
    const y2 = b.y + b.h / 2;
    s.append(svg("path", { d: "M " + x1 + " " + y1 + " C " + (x1 + 40) + " " + y1 + ", " + (x2 - 40) + " " + y2 + ", " + x2 + " " + y2, class: "wire", "marker-end": "url(#arrow)" }));
    if (label) s.append(svg("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, class: "wire-label", "text-anchor": "middle" }, label));
  };

  // the pod's network namespace, with its interface
  const netns = nsOf(d.sandbox.namespaces, "net");
  const podX = 820;
  const podBox = svg("g", { class: "box netns" });
  podBox.append(svg("rect", { x: podX - 20, y: 10, width: W - podX + 10, height: H - 20, rx: 12 }));
  podBox.append(svg("text", { x: podX - 10, y: 32, class: "title" }, n.hostNetwork ? "host network namespace" : "pod network namespace"));
  const nsText = svg("text", { x: podX - 10, y: 50 }, "net:[");
  nsText.append(svg("tspan", { "data-testid": "netns-inode" }, netns ? netns.inode : "?"));
  nsText.append(document.createTextNode("] " + (netns ? netns.shared : "")));
  podBox.append(nsText);
  s.append(podBox);
  const mid = H / 2 - boxH / 2;
  const pi = n.podInterface;
  const eth = box(podX, mid, 260, boxH, "iface", pi ? pi.name + " (ifindex " + pi.ifindex + ")" : "no pod interface", pi
    ? [(pi.addresses || []).join(", ") || "no address", "mac " + pi.mac, "default via " + (((n.routes || []).find((r) => r.dst === "default") || {}).gateway || "none")]
    : [n.podIp || ""], pi ? ["pod-ip", "pod-mac", "pod-gateway"] : []);

  const hv = n.hostVeth;
  const veth = box(560, mid, 210, boxH, "iface", hv ? ["veth ", hv.name, "host-veth"] : "no host veth", hv
    ? ["ifindex " + hv.ifindex + ", peer " + (hv.peerIfindex ?? "?"), "mac " + hv.mac, "master " + (hv.master || "none")]
    : [], ["veth-ifindex", "veth-mac", "veth-master"]);

  const br = n.bridge;
  const bridge = box(320, mid, 200, boxH, "bridge", br ? "bridge " + br.name : "no bridge", br
    ? [(br.addresses || []).join(", ") || "no address", "ifindex " + br.ifindex, "mac " + br.mac]
    : [], ["bridge-addr", "bridge-ifindex", "bridge-mac"]);
  arrow(bridge, veth, "port");
  arrow(veth, eth, "veth pair");

  // the Service rules that DNAT to this pod
  if (rules.length === 0) {
    box(20, mid, 260, boxH, "rule", "no Service rule", [d.serviceRules.table ? "table ip " + d.serviceRules.table : "no service proxy on the node", "leads here"]);
  }
  rules.forEach((r, i) => {
    const from = [].concat(r.serviceIps || [], (r.nodePorts || []).map((p) => "NodePort " + p));
    const b = box(20, 20 + i * 110, 270, 100, "rule", "Service " + r.service + " " + r.port, [
      from.join(", ") || "(no address)",
      "via " + (r.viaChains || []).join(" → "),
      r.endpointChain,
      "DNAT → " + r.endpoint,
    ], ["rule-from-" + i, "rule-via-" + i, "rule-chain-" + i, "rule-dnat-" + i]);
    arrow(b, bridge, i === 0 ? "routed to " + (n.podIp || "") : "");
  });
  return s;
}

function namespaceTable(d) {
  const types = ["net", "ipc", "uts", "pid", "mnt", "cgroup", "user"];
  const procs = [["sandbox (pid " + d.sandbox.pid + ")", d.sandbox.namespaces, "sandbox"]].concat(
    d.containers.map((c) => [c.name + (c.pid ? " (pid " + c.pid + ")" : " (" + c.state + ")"), c.namespaces, c.name]),
  );
  const head = el("tr", {}, el("th", { text: "namespace" }), procs.map(([label]) => el("th", { text: label })));
  const rows = types.map((t) =>
    el("tr", {}, el("th", { text: t }), procs.map(([, list, id]) => {
      const n = nsOf(list, t);
      return n
        ? el("td", { class: "ns ns-" + n.shared, "data-testid": "ns-" + id + "-" + t, title: n.shared }, el("code", { text: n.inode }), " ", el("span", { class: "badge", text: n.shared }))
        : el("td", { class: "muted", text: "–" });
    })),
  );
  return [
    el("table", { class: "nstable", id: "namespaces" }, el("thead", {}, head), el("tbody", {}, rows)),
    el("p", { class: "legend" }, el("span", { class: "badge ns-pod", text: "pod" }), " the sandbox's, shared by the pod  ",
      el("span", { class: "badge ns-host", text: "host" }), " the node's  ", el("span", { class: "badge ns-own", text: "own" }), " this process's alone"),
  ];
}

function meter(label, used, limit, fmt) {
  const pct = used !== null && used !== undefined && limit ? Math.min(100, (100 * used) / limit) : null;
  const m = el("div", { class: "meter" });
  const bar = el("div", { class: "bar" });
  if (pct !== null) {
    const fill = svg("svg", { viewBox: "0 0 100 8", preserveAspectRatio: "none", class: "fill" });
    fill.append(svg("rect", { x: 0, y: 0, width: pct, height: 8 }));
    bar.append(fill);
  }
  m.append(el("span", { class: "label", text: label }), bar, el("span", { class: "value", text: fmt(used) + " / " + (limit ? fmt(limit) : "no limit") }));
  return m;
}

function containerCard(c) {
  const card = el("div", { class: "card", "data-container": c.name });
  card.append(el("h4", {}, c.name + " ", el("span", { class: "status s-" + c.state, text: c.state }), " restarts " + c.restartCount + (c.pid ? ", pid " + c.pid : "")));
  const cg = c.cgroup;
  if (cg) {
    const cpuLimit = cg.cpu.quotaMicros && cg.cpu.periodMicros && cg.cpu.quotaMicros > 0 ? cg.cpu.quotaMicros / cg.cpu.periodMicros : null;
    card.append(
      el("p", {}, "cgroup ", el("code", { text: cg.path })),
      meter("memory", cg.memory.usageBytes, cg.memory.limitBytes, bytes),
      meter("pids", cg.pids.current, cg.pids.limit, (v) => (v === null || v === undefined ? "–" : String(v))),
      el("p", { class: "small" }, "cpu: " + (cpuLimit ? cpuLimit.toFixed(2) + " cores (quota " + cg.cpu.quotaMicros + " µs per " + cg.cpu.periodMicros + " µs)" : "no quota"),
        cg.cpu.shares ? ", shares " + cg.cpu.shares : "", cg.cpu.weight ? ", weight " + cg.cpu.weight : "",
        cg.cpu.usageNanos !== null && cg.cpu.usageNanos !== undefined ? ", used " + (cg.cpu.usageNanos / 1e9).toFixed(3) + " s" : "",
        cg.memory.oomKills ? ", OOM kills " + cg.memory.oomKills : ""),
    );
  }
  if (c.rootfs) {
    card.append(el("p", { class: "small" }, "rootfs " + c.rootfs.fsType + ": " + c.rootfs.lowerLayers.length + " layer(s) ",
      c.rootfs.lowerLayers.map((l) => el("code", { text: (l.digest || l.dir).slice(0, 19) + " " })), " upper ", el("code", { text: c.rootfs.upperDir || "–" })));
  }
  if (c.mounts.length) {
    const head = el("tr", {}, ["volume", "kind", "in the container", "on the host", "kernel"].map((h) => el("th", { text: h })));
    const rows = c.mounts.map((m) => el("tr", {},
      el("td", { text: m.volume || "(kubelet)" }), el("td", { text: m.kind }), el("td", {}, el("code", { text: m.mountPath })),
      el("td", {}, el("code", { text: m.hostSource })),
      el("td", { class: "small", text: m.kernel ? m.kernel.fsType + " " + m.kernel.device + (m.kernel.readOnly ? " ro" : " rw") + " (mount " + m.kernel.mountId + ")" : "–" })));
    card.append(el("table", { class: "mounts" }, el("thead", {}, head), el("tbody", {}, rows)));
  }
  card.append(el("p", { class: "small" }, "monitor pid " + (c.monitor.pid ?? "–") + ", log ", el("code", { text: c.monitor.logFile })));
  return card;
}

// ---------------------------------------------------------------------------------------------------------

window.addEventListener("hashchange", () => render(true));
document.addEventListener("DOMContentLoaded", () => {
  // the token is in an HttpOnly cookie now: take it out of the address bar and history
  if (location.search.includes("token=")) history.replaceState(null, "", location.pathname + location.hash);
  render(true);
  connect();
  setInterval(() => {
    if (!PARENT[route().view]) scheduleRender(); // ages
  }, 10000);
});
