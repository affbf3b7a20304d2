// The carrot-ai trace viewer: plain JS over the server's own API (no build step, no dependencies).
// Every value from a record is written with textContent, never as HTML.
"use strict";

const $ = (selector) => document.querySelector(selector);
const SVG = "http://www.w3.org/2000/svg";
let apiKey = sessionStorage.getItem("carrot-api-key") || "";
let cursor = null;
let currentTrace = null;
let listGeneration = 0;  // a response to an older request never overwrites a newer one
let chartGeneration = 0;

async function api(path, params) {
  const url = new URL(path, location.origin);
  for (const [key, value] of params || []) url.searchParams.append(key, value);
  const response = await fetch(url, { headers: apiKey ? { Authorization: "Bearer " + apiKey } : {} });
  if (response.status === 401) {
    $("#key-form").hidden = false;
    throw new Error("this server needs its API key");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function status(text) { $("#status-line").textContent = text; }

function filterParams() {
  const params = [];
  for (const field of $("#filters").querySelectorAll("input, select")) {
    if (field.type === "checkbox") {
      if (field.checked) params.push([field.name, "true"]);
    } else if (field.name === "tag") {
      for (const tag of field.value.split(",")) if (tag.trim()) params.push(["tag", tag.trim()]);
    } else if (field.type === "datetime-local") {
      if (field.value) params.push([field.name, new Date(field.value).toISOString()]);
    } else if (field.value.trim()) {
      params.push([field.name, field.value.trim()]);
    }
  }
  return params;
}

// --- formatting -------------------------------------------------------------------------------------------------

function fmtCost(value) { return typeof value === "number" ? "$" + value.toFixed(value < 0.01 ? 6 : 4) : ""; }
function fmtLatency(ms) {
  if (typeof ms !== "number") return "";
  return ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms.toFixed(1) + " ms";
}
function fmtTokens(meta) {
  if (meta.input_tokens === undefined && meta.output_tokens === undefined) return "";
  return `${meta.input_tokens ?? 0} in / ${meta.output_tokens ?? 0} out`;
}
function fmtTime(iso) { const d = new Date(iso); return isNaN(d) ? iso : d.toLocaleString(); }
function fmtJson(value) { return JSON.stringify(value, null, 2); }

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

// --- the list ---------------------------------------------------------------------------------------------------

async function loadList(append) {
  const params = filterParams();
  params.push(["limit", "50"]);
  if (append && cursor) params.push(["cursor", cursor]);
  const generation = ++listGeneration;
  status("Loading…");
  try {
    const page = await api("/v1/traces", params);
    if (generation !== listGeneration) return;
    const body = $("#trace-list tbody");
    if (!append) body.textContent = "";
    for (const record of page.traces) body.appendChild(listRow(record));
    cursor = page.next_cursor;
    $("#load-more").hidden = !cursor;
    $("#empty").hidden = body.children.length > 0;
    status(`${body.children.length} record(s) shown${cursor ? ", more available" : ""}`);
  } catch (error) {
    status("Error: " + error.message);
  }
}

function listRow(record) {
  const meta = record.metadata || {};
  const row = document.createElement("tr");
  row.dataset.id = record.id;
  cell(row, fmtTime(record.started_at));
  const name = cell(row, record.name, "name");
  if (meta.parent_trace_id) {
    const child = document.createElement("span");
    child.className = "child";
    child.textContent = " (child step)";
    name.appendChild(child);
  }
  cell(row, meta.type || "");
  cell(row, record.status, "status-" + record.status);
  cell(row, meta.model || "");
  cell(row, fmtTokens(meta));
  cell(row, fmtCost(meta.cost_usd));
  cell(row, fmtLatency(meta.latency_ms));
  row.addEventListener("click", () => { location.hash = "#/trace/" + encodeURIComponent(record.id); });
  return row;
}

// --- the charts -------------------------------------------------------------------------------------------------

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function drawChart(svg, buckets, series, format) {
  svg.textContent = "";
  const width = 600, height = 150, left = 56, bottom = 20, top = 8;
  if (!buckets.length) {
    svg.appendChild(svgElement("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "axis" }, "no data"));
    return;
  }
  const max = Math.max(...buckets.flatMap((b) => series.map((s) => b[s.key] || 0)), 1e-9);
  const first = buckets[0].start_us, last = buckets[buckets.length - 1].start_us;
  const span = Math.max(last - first, 1);
  const x = (b) => buckets.length === 1 ? left + (width - left) / 2 : left + 6 + ((b.start_us - first) / span) * (width - left - 12);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  for (const v of [0, max / 2, max]) {
    svg.appendChild(svgElement("line", { x1: left, x2: width, y1: y(v), y2: y(v), class: "gridline" }));
    svg.appendChild(svgElement("text", { x: left - 4, y: y(v) + 3, "text-anchor": "end", class: "axis" }, format(v)));
  }
  svg.appendChild(svgElement("text", { x: left, y: height - 4, class: "axis" }, fmtTime(new Date(first / 1000).toISOString())));
  svg.appendChild(svgElement("text", { x: width, y: height - 4, "text-anchor": "end", class: "axis" },
    fmtTime(new Date(last / 1000).toISOString())));
  const barWidth = Math.max(2, Math.min(24, (width - left) / buckets.length - 2));
  for (const s of series) {
    if (s.kind === "bar") {
      for (const b of buckets) {
        const bar = svgElement("rect", { x: x(b) - barWidth / 2, y: y(b[s.key] || 0), width: barWidth,
          height: Math.max(0, y(0) - y(b[s.key] || 0)), class: "bar" });
        bar.appendChild(svgElement("title", {}, `${fmtTime(new Date(b.start_us / 1000).toISOString())}: ${format(b[s.key] || 0)} (${b.count} records)`));
        svg.appendChild(bar);
      }
    } else {
      const points = buckets.filter((b) => typeof b[s.key] === "number");
      svg.appendChild(svgElement("polyline", { points: points.map((b) => `${x(b)},${y(b[s.key])}`).join(" "), class: s.kind }));
      if (s.kind === "avg") {
        for (const b of points) {
          const dot = svgElement("circle", { cx: x(b), cy: y(b[s.key]), r: 3, class: "dot" });
          dot.appendChild(svgElement("title", {}, `${format(b[s.key])} average, ${format(b.max_latency_ms)} max (${b.count} records)`));
          svg.appendChild(dot);
        }
      }
    }
  }
}

async function loadCharts() {
  const generation = ++chartGeneration;
  try {
    const stats = await api("/v1/stats", [...filterParams(), ["buckets", "40"]]);
    if (generation !== chartGeneration) return;
    drawChart($("#chart-cost"), stats.buckets, [{ key: "cost_usd", kind: "bar" }], (v) => "$" + v.toPrecision(2));
    drawChart($("#chart-latency"), stats.buckets,
      [{ key: "max_latency_ms", kind: "max" }, { key: "avg_latency_ms", kind: "avg" }], fmtLatency);
  } catch (error) {
    status("Error: " + error.message);
  }
}

// --- the detail view ----------------------------------------------------------------------------------------------

async function openTrace(id) {
  try {
    currentTrace = await api("/v1/traces/" + encodeURIComponent(id));
  } catch (error) {
    status("Error: " + error.message);
    return;
  }
  const trace = currentTrace;
  $("#detail").hidden = false;
  $("#detail-title").textContent = trace.tree.name;
  const t = trace.totals;
  $("#detail-summary").textContent = `${trace.record_count} record(s) · ${fmtLatency(trace.tree.metadata.latency_ms)}`
    + (t.total_tokens ? ` · ${t.total_tokens} tokens` : "") + (t.cost_usd ? ` · ${fmtCost(t.cost_usd)}` : "")
    + (t.errors ? ` · ${t.errors} error(s)` : "");
  $("#detail-missing").hidden = !trace.parent_missing;
  $("#detail-missing").textContent = trace.parent_missing ? `Its parent ${trace.parent_missing} has not been received (yet).` : "";
  const tree = $("#tree");
  tree.textContent = "";
  const list = document.createElement("ul");
  list.appendChild(treeItem(trace.tree));
  tree.appendChild(list);
  for (const row of document.querySelectorAll("#trace-list tbody tr")) row.classList.toggle("selected", row.dataset.id === id);
  selectNode(findNode(trace.tree, id) || trace.tree);
}

function findNode(node, id) {
  if (node.id === id) return node;
  for (const child of node.children || []) {
    const found = findNode(child, id);
    if (found) return found;
  }
  return null;
}

function treeItem(node) {
  const item = document.createElement("li");
  item.setAttribute("role", "treeitem");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "node";
  button.dataset.id = node.id;
  const name = document.createElement("span");
  name.className = "status-" + node.status;
  name.textContent = node.name;
  const meta = document.createElement("span");
  meta.className = "meta";
  const m = node.metadata || {};
  meta.textContent = [m.type, m.model, fmtLatency(m.latency_ms), node.status === "error" ? "error" : ""].filter(Boolean).join(" · ");
  button.append(name, meta);
  button.addEventListener("click", () => selectNode(node));
  item.appendChild(button);
  if (node.children && node.children.length) {
    const list = document.createElement("ul");
    list.setAttribute("role", "group");
    for (const child of node.children) list.appendChild(treeItem(child));
    item.appendChild(list);
  }
  return item;
}

function selectNode(node) {
  const m = node.metadata || {};
  for (const button of document.querySelectorAll("#tree .node")) button.classList.toggle("selected", button.dataset.id === node.id);
  $("#node-name").textContent = node.name;
  $("#node-status").textContent = node.status;
  $("#node-status").className = "status-" + node.status;
  $("#node-kind").textContent = [m.type, m.source].filter(Boolean).join(" · ");
  $("#node-model").textContent = [m.model, m.provider].filter(Boolean).join(" · ") || "—";
  $("#node-tokens").textContent = m.total_tokens !== undefined ? `${fmtTokens(m)} (${m.total_tokens} total)` : "—";
  $("#node-cost").textContent = fmtCost(m.cost_usd) || "—";
  $("#node-latency").textContent = fmtLatency(m.latency_ms)
    + (m.time_to_first_token_ms !== undefined ? ` (first token ${fmtLatency(m.time_to_first_token_ms)})` : "");
  $("#node-started").textContent = `${fmtTime(node.started_at)} (${node.started_at})`;
  $("#node-tags").textContent = (node.tags || []).join(", ") || "—";
  $("#node-id").textContent = node.id;
  const error = $("#node-error");
  error.hidden = node.status !== "error";
  error.textContent = node.status === "error" ? `${node.output.error_type || "Error"}: ${node.output.error || ""}` : "";
  $("#node-input").textContent = fmtJson(node.input);
  $("#node-output").textContent = fmtJson(node.output);
  $("#node-metadata").textContent = fmtJson(m);
}

// --- wiring -------------------------------------------------------------------------------------------------------

function route() {
  const match = location.hash.match(/^#\/trace\/(.+)$/);
  let id = null;
  if (match) {
    try {
      id = decodeURIComponent(match[1]);
    } catch (error) {  // a hand-edited link with a stray "%": say so instead of throwing
      status("Error: not a trace link: " + location.hash);
    }
  }
  if (id !== null) {
    openTrace(id);
  } else {
    $("#detail").hidden = true;
  }
}

function refresh() {
  cursor = null;
  loadList(false);
  loadCharts();
}

$("#filters").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
$("#clear").addEventListener("click", () => { $("#filters").reset(); refresh(); });
$("#load-more").addEventListener("click", () => loadList(true));
$("#close-detail").addEventListener("click", () => { location.hash = "#/"; });
$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey = $("#api-key").value.trim();
  sessionStorage.setItem("carrot-api-key", apiKey);
  $("#key-form").hidden = true;
  refresh();
  route();
});
window.addEventListener("hashchange", route);
refresh();
route();
