// cnilab serve: draws the scene the server streams (Server-Sent Events from /events). Every word
// on the page comes from the server (lessons/ui, en and ko); this file has none of its own. It
// only reads: nothing here sends anything but GET /events.
"use strict";

const SVG = "http://www.w3.org/2000/svg";  // an XML namespace name, never fetched
const lang = document.documentElement.lang;
let scene = null;
let trace = null;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function linkState(link, labels) {
  if (!link.up) return ["down", labels.down];
  if (link.carrier === false) return ["nocarrier", labels.no_carrier];
  return ["up", "UP"];
}

function linkNode(link, labels, tag) {
  const [state, word] = linkState(link, labels);
  const node = el(tag, `link ${state}${link.lit ? " lit" : ""}`);
  node.dataset.end = link.end;
  node.append(el("b", "name", link.name));
  if (tag !== "div" || link.kind !== "veth") node.append(el("span", "kind", link.kind));
  node.append(el("span", `state ${state}`, word));
  for (const a of link.addresses) node.append(el("span", "addr", a));
  if (link.mac && (link.kind === "bridge" || link.master)) node.append(el("span", "mac", link.mac));
  return node;
}

function lines(title, items, cls) {
  const part = el("div", `lines ${cls}`);
  if (!items.length) return null;
  part.append(el("h4", null, title));
  const list = el("ul");
  for (const item of items) list.append(el("li", item.lit ? "lit" : null, item.text));
  part.append(list);
  return part;
}

// Cables leave a box at its edge: a container's (above its node) links come last, at its
// bottom; a node's bridge comes first (its ports face the containers) and its other links last
// (the uplink faces the outside world below); a box below its node starts with its links.
const LINKS_LAST = new Set(["container", "pod", "node"]);

function drawBox(box, labels) {
  const node = el("div", `box role-${box.role}${box.lit ? " lit" : ""}`);
  node.dataset.ns = box.id;
  node.append(el("h3", null, box.title));
  const bridges = box.links.filter((l) => l.kind === "bridge").map((l) => l.name);
  for (const br of bridges) node.append(drawSwitch(box, br, labels));
  const plain = box.links.filter((l) => l.kind !== "bridge" && !bridges.includes(l.master) &&
                                 !plainLoopback(l));
  // Loopback away from the edge the cables leave by.
  plain.sort((a, b) => (a.kind === "loopback") - (b.kind === "loopback"));
  if (LINKS_LAST.has(box.role)) plain.reverse();
  const links = el("ul", "links");
  for (const link of plain) links.append(linkNode(link, labels, "li"));
  const rest = [];
  if (box.checks) {
    const checks = el("div", "checks");
    for (const c of box.checks) {
      checks.append(el("span", `check ${c.ok ? "ok" : "bad"}${c.lit ? " lit" : ""}`,
                       `${c.text} ${c.ok ? "✔" : "✘"}`));
    }
    rest.push(checks);
  }
  for (const key of ["routes", "nat", "sysctls", "arp"]) {
    const part = lines(labels[key], box[key], key);
    if (part) rest.push(part);
  }
  if (LINKS_LAST.has(box.role)) node.append(...rest, links);
  else node.append(links, ...rest);
  return node;
}

// Loopback as it always is once up (step 7): not worth a line; down or just changed, it shows.
function plainLoopback(link) {
  return link.kind === "loopback" && link.up && !link.lit && link.addresses.length === 1 &&
    link.addresses[0] === "127.0.0.1/8";
}

function drawSwitch(box, br, labels) {
  const link = box.links.find((l) => l.name === br);
  const sw = el("div", "switch");
  sw.append(linkNode(link, labels, "div"));
  const ports = el("div", "ports");
  for (const port of box.links.filter((l) => l.master === br)) {
    const p = linkNode(port, labels, "div");
    p.classList.add("port");
    for (const f of box.fdb.filter((e) => e.port === port.name && e.bridge === br)) {
      p.append(el("span", `fdb${f.lit ? " lit" : ""}`, f.text));
    }
    ports.append(p);
  }
  const hidden = (box.hidden || {})[br];
  if (hidden) ports.append(el("div", "port more", labels.ports_more.replace("{count}", hidden)));
  sw.append(ports);
  return sw;
}

function drawPods(column, labels) {
  const part = el("div", "pods");
  part.append(el("div", "pods-text", column.pods.text));
  const grid = el("div", "pod-grid");
  for (const p of column.pods.pods) {
    const dot = el("span", `pod ${p.ready ? "ready" : "notready"}${p.lit ? " lit" : ""}`);
    dot.title = `${p.name} ${p.ip || ""}`;
    dot.dataset.ns = p.name;
    grid.append(dot);
  }
  part.append(grid);
  return part;
}

function drawScene() {
  const s = scene;
  if (!s) return;
  const labels = s.labels;
  document.body.dataset.kind = s.kind;
  document.getElementById("title").textContent = s.title;
  document.title = s.title;
  const columns = document.getElementById("columns");
  columns.replaceChildren();
  for (const column of s.columns) {
    const col = el("div", "column");
    col.dataset.column = column.id;
    const top = el("div", "row top");
    for (const box of column.top) top.append(drawBox(box, labels));
    if (column.pods) top.append(drawPods(column, labels));
    if (top.childElementCount) col.append(top);
    for (const box of column.middle) col.append(drawBox(box, labels));
    columns.append(col);
  }
  for (const id of ["bottom", "others"]) {
    const row = document.getElementById(id);
    row.replaceChildren(...s[id].map((box) => drawBox(box, labels)));
  }
  document.getElementById("empty").textContent = s.empty;
  drawSteps(s);
  drawChanges(s);
  drawTrace();
  drawCables();
  document.body.dataset.version = String(s.version);
}

// One section of the side panel: a title and a list, or nothing when the list is empty.
function panel(id, title, tag, items) {
  const part = document.getElementById(id);
  part.replaceChildren();
  if (!items.length) return;
  const list = el(tag, id);
  list.append(...items);
  part.append(el("h2", null, title), list);
}

function drawSteps(s) {
  panel("steps", s.labels.steps, "ol", s.steps.map((step) => {
    const item = el("li", `${step.done ? "done" : "todo"}${step.lit ? " lit" : ""}`);
    item.append(el("span", "mark", step.done ? "✔" : "·"), el("span", "n", `${step.n}`),
                el("span", "step-title", step.title));
    return item;
  }));
}

function drawChanges(s) {
  panel("changes", s.labels.changes, "ul",
        s.changes.map((c) => el("li", c.lit ? "lit" : null, c.text)));
}

function hopItem(h) {
  const item = el("li", "hop");
  const where = h.netns === null ? "·" : h.netns;
  item.append(el("span", "hop-where", `${where} ${h.direction} ${h.dev}`),
              el("span", "hop-addr", `  ${h.src} → ${h.dst}`));
  if (h.note) item.append(el("span", "hop-note", h.note));
  return item;
}

function drawTrace() {
  const part = document.getElementById("trace");
  part.replaceChildren();
  document.querySelectorAll(".hop-badge").forEach((b) => b.remove());
  document.querySelectorAll(".traced, .dropped").forEach((n) => n.classList.remove("traced", "dropped"));
  if (!scene) return;
  const labels = scene.labels;
  part.append(el("h2", null, labels.trace));
  if (!trace) {
    part.append(el("p", "dim", labels.trace_none));
    return;
  }
  part.append(el("p", "trace-title", `${trace.title} · ${labels.traced_at.replace("{at}", trace.at)}`));
  const list = el("ol", "hops");
  trace.hops.forEach((h, i) => {
    list.append(hopItem(h));
    const end = findEnd(`${h.netns || ""}/${h.dev}`);
    if (end) {
      end.classList.add("traced");
      end.append(el("span", "hop-badge", `${i + 1}`));
    }
  });
  part.append(list);
  for (const n of trace.nat) {
    const text = labels.nat_rewrite.replace("{netns}", n.netns || "")
      .replace("{before}", `${n.before.src} → ${n.before.dst}`)
      .replace("{after}", `${n.after.src} → ${n.after.dst}`).replace("{rule}", n.rule);
    part.append(el("p", "nat-rewrite", text));
  }
  if (trace.reply && trace.reply.hops.length) {
    part.append(el("h4", null, labels.reply));
    const back = el("ol", "hops reply");
    for (const h of trace.reply.hops) back.append(hopItem(h));
    part.append(back);
  }
  part.append(el("p", `verdict ${trace.ok ? "ok" : "bad"}`, trace.verdict));
  if (trace.hint) part.append(el("p", "hint", trace.hint));
  const dropped = trace.dropped || (trace.reply && trace.reply.dropped);
  if (dropped) {
    const end = findEnd(`${dropped.netns || ""}/${dropped.dev}`) ||
      document.querySelector(`.box[data-ns="${CSS.escape(dropped.netns || "")}"]`);
    if (end) {
      end.classList.add("dropped");
      const badge = el("span", "hop-badge dead", "✖");
      badge.title = dropped.text;
      end.append(badge);
    }
  }
}

function findEnd(end) {
  return document.querySelector(`[data-end="${CSS.escape(end)}"]`);
}

function tracedPairs() {
  const pairs = new Set();
  if (!trace) return pairs;
  for (const leg of [trace, trace.reply]) {
    if (!leg) continue;
    for (let i = 1; i < leg.hops.length; i++) {
      const a = `${leg.hops[i - 1].netns || ""}/${leg.hops[i - 1].dev}`;
      const b = `${leg.hops[i].netns || ""}/${leg.hops[i].dev}`;
      pairs.add(`${a}|${b}`).add(`${b}|${a}`);
    }
  }
  return pairs;
}

// From the bottom edge of the upper end to the top edge of the lower one; ends side by side:
// from the facing edges, bending sideways.
function cablePath(ra, rb, frame, lab) {
  const dx = lab.scrollLeft - frame.left;
  const dy = lab.scrollTop - frame.top;
  const [upper, lower] = ra.top <= rb.top ? [ra, rb] : [rb, ra];
  if (lower.top >= upper.bottom) {
    const x1 = upper.left + upper.width / 2 + dx;
    const x2 = lower.left + lower.width / 2 + dx;
    const y1 = upper.bottom + dy;
    const y2 = lower.top + dy;
    const bend = Math.max(16, (y2 - y1) / 2);
    return `M ${x1} ${y1} C ${x1} ${y1 + bend}, ${x2} ${y2 - bend}, ${x2} ${y2}`;
  }
  const [left, right] = ra.left <= rb.left ? [ra, rb] : [rb, ra];
  const x1 = left.right + dx;
  const x2 = right.left + dx;
  const y1 = left.top + left.height / 2 + dy;
  const y2 = right.top + right.height / 2 + dy;
  const bend = Math.max(16, Math.abs(x2 - x1) / 2);
  return `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`;
}

function drawCables() {
  const svg = document.getElementById("cables");
  const lab = document.getElementById("lab");
  svg.replaceChildren();
  if (!scene) return;
  const frame = lab.getBoundingClientRect();
  svg.setAttribute("width", lab.scrollWidth);
  svg.setAttribute("height", lab.scrollHeight);
  const traced = tracedPairs();
  for (const cable of scene.cables) {
    const a = findEnd(cable.a);
    const b = findEnd(cable.b);
    if (!a || !b) continue;
    const ra = a.getBoundingClientRect();
    const rb = b.getBoundingClientRect();
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", cablePath(ra, rb, frame, lab));
    const on = traced.has(`${cable.a}|${cable.b}`);
    path.setAttribute("class", `cable ${cable.up ? "up" : "down"}${cable.lit ? " lit" : ""}${on ? " traced" : ""}`);
    path.dataset.a = cable.a;
    path.dataset.b = cable.b;
    svg.append(path);
  }
}

function receive(data) {
  scene = data.scene ? { ...data.scene, version: data.version } : null;
  trace = data.trace ? data.trace : null;
  drawScene();
}

function connect() {
  const status = document.getElementById("status");
  const source = new EventSource(`/events?lang=${encodeURIComponent(lang)}`);
  source.onmessage = (event) => {
    receive(JSON.parse(event.data));
    status.className = "connected";
    if (scene) status.textContent = scene.labels.connected;
  };
  source.onerror = () => {
    status.className = "disconnected";
    if (scene) status.textContent = scene.labels.disconnected;
  };
}

window.addEventListener("resize", drawCables);
connect();
