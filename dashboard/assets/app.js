// rkube dashboard: plain JS, no framework, no build step. The server streams every kind's rows over one
// EventSource (/api/stream: init, apply, ready, delete, problem per kind); a pod's page fetches its inspection
// (/api/inspect/pods/NS/NAME, the document of `rkube inspect pod -o json`) and draws it. Every value from the
// cluster goes into the page as text (textContent, SVG text nodes), never as markup.
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
    ["Name", (r) => r.name],
    ["Status", (r) => el("span", { class: "status s-" + r.status.split(/[ ,]/)[0].toLowerCase(), text: r.status })],
    ["Internal IP", (r) => r.internalIp || ""],
    ["Pod CIDR", (r) => r.podCidr || ""],
    ["Kubelet", (r) => r.kubeletVersion || ""],
    ["Age", (r) => age(r.created)],
  ],
  services: [
    ["Namespace", (r) => r.namespace],
    ["Name", (r) => r.name],
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
// views: #/pods, #/nodes, #/services, #/events, #/pod/NS/NAME

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "pod" && parts.length === 3) return { view: "pod", namespace: parts[1], name: parts[2] };
  if (KINDS.includes(parts[0])) return { view: parts[0] };
  return { view: "pods" };
}

let podView = null; // {key, doc | error} of the pod page shown

function render(navigated) {
  const r = route();
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("current", a.dataset.view === r.view || (r.view === "pod" && a.dataset.view === "pods"));
  }
  const main = document.getElementById("main");
  if (r.view === "pod") {
    const key = r.namespace + "/" + r.name;
    if (navigated || !podView || podView.key !== key) {
      podView = { key, doc: null, error: null };
      loadPod(r.namespace, r.name);
    }
    main.replaceChildren(...podPage(r.namespace, r.name).filter((x) => x));
    return;
  }
  podView = null;
  main.replaceChildren(...table(r.view).filter((x) => x));
}

async function loadPod(namespace, name) {
  const key = namespace + "/" + name;
  let doc = null;
  let error = null;
  try {
    const resp = await fetch("/api/inspect/pods/" + encodeURIComponent(namespace) + "/" + encodeURIComponent(name), {
      credentials: "same-origin",
    });
    const body = await resp.json().catch(() => ({ error: "HTTP " + resp.status }));
    if (resp.ok) doc = body;
    else error = body.error || "HTTP " + resp.status;
  } catch (e) {
    error = String(e);
  }
  if (podView && podView.key === key) {
    podView.doc = doc;
    podView.error = error;
    scheduleRender();
  }
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
      row ? row.status + " on " + (row.node || "no node yet") + (row.podIp ? ", IP " + row.podIp : "") + ", ready " + row.ready : "",
      " ",
      el("button", { id: "pod-refresh", type: "button", text: "Refresh" }),
    ),
  ];
  queueMicrotask(() => {
    const b = document.getElementById("pod-refresh");
    if (b) b.onclick = () => {
      podView = { key, doc: null, error: null };
      loadPod(namespace, name);
      scheduleRender();
    };
  });
  if (!podView || (!podView.doc && !podView.error)) {
    out.push(el("p", { class: "muted", id: "pod-loading", text: "Asking node's kubelet…" }));
    return out;
  }
  if (podView.error) {
    out.push(el("p", { class: "error", id: "pod-error", text: podView.error }));
    return out;
  }
  const d = podView.doc;
  out.push(el("section", { id: "pod-inspection", "data-uid": d.metadata.uid }, [
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
  ]));
  return out;
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
    if (route().view !== "pod") scheduleRender(); // ages
  }, 10000);
});
