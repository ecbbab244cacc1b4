// pingpost finance dashboard: reads the finance API with the key typed in (kept in memory
// only), draws revenue by day as hand-written SVG, and offers the reports as CSV downloads.
"use strict";

const SERIES = [
  ["gross", "Gross"],
  ["payouts", "Payouts"],
  ["margin", "Margin"],
  ["net_margin", "Net margin"],
];
const SVG = "http://www.w3.org/2000/svg";
let key = "";

const $ = (id) => document.getElementById(id);

function isoDate(d) {
  return d.toISOString().slice(0, 10);
}

function query(extra) {
  const params = new URLSearchParams({ from: $("from").value, to: $("to").value, tz: $("tz").value.trim() || "UTC" });
  for (const [k, v] of Object.entries(extra)) params.set(k, v);
  return params.toString();
}

async function api(path, params) {
  const response = await fetch(`${path}?${query(params)}`, { headers: { Authorization: `Bearer ${key}` } });
  if (!response.ok) {
    let message = `${response.status}`;
    try {
      const body = await response.json();
      message = body.error.message + (body.error.fields || []).map((f) => ` ${f.field} ${f.message}.`).join("");
    } catch (_) { /* not JSON */ }
    if (response.status === 401) message = "That key is not known.";
    if (response.status === 403) message = "That key is not a finance key.";
    throw new Error(message);
  }
  return response;
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function days(from, to) {
  const out = [];
  for (let d = new Date(`${from}T00:00:00Z`); isoDate(d) <= to; d.setUTCDate(d.getUTCDate() + 1)) out.push(isoDate(d));
  return out;
}

// Money arrives as exact two-decimal strings; numbers are for drawing only.
function drawChart(report) {
  const byDay = new Map(report.rows.map((r) => [r.group, r]));
  const dates = days(report.from, report.to);
  const values = SERIES.map(([name]) => dates.map((d) => (byDay.has(d) ? Number(byDay.get(d)[name]) : 0)));
  const all = values.flat();
  const top = Math.max(1, ...all);
  const bottom = Math.min(0, ...all);
  const [w, h, left, right, up, down] = [900, 300, 64, 16, 28, 36];
  const x = (i) => left + (dates.length === 1 ? (w - left - right) / 2 : (i * (w - left - right)) / (dates.length - 1));
  const y = (v) => up + ((top - v) * (h - up - down)) / (top - bottom);
  const chart = svg("svg", { id: "revenue-chart", viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": "Revenue by day", "data-days": dates.length });
  for (let t = 0; t <= 4; t++) {
    const v = bottom + ((top - bottom) * t) / 4;
    chart.append(svg("line", { class: "axis", x1: left, x2: w - right, y1: y(v), y2: y(v) }));
    chart.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(2)));
  }
  const step = Math.max(1, Math.ceil(dates.length / 10));
  dates.forEach((d, i) => {
    if (i % step === 0 || i === dates.length - 1) chart.append(svg("text", { x: x(i), y: h - down + 16, "text-anchor": "middle" }, d.slice(5)));
  });
  SERIES.forEach(([name, label], s) => {
    const points = values[s].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { class: name, points, "data-series": name }));
    values[s].forEach((v, i) => chart.append(svg("circle", { class: name, cx: x(i), cy: y(v), r: 2.5, fill: "currentColor", stroke: "none" })));
    const legend = svg("g", { class: "legend", transform: `translate(${left + s * 120}, 8)` });
    legend.append(svg("rect", { class: name, width: 10, height: 10 }));
    legend.append(svg("text", { x: 14, y: 9 }, label));
    chart.append(legend);
  });
  $("chart").replaceChildren(chart);
}

function table(id, headers, rows) {
  const t = $(id);
  const head = el("tr");
  headers.forEach((h) => head.append(el("th", h)));
  t.replaceChildren(head);
  if (rows.length === 0) {
    const empty = el("tr");
    empty.append(el("td", "No activity in this range.", { colspan: headers.length }));
    t.append(empty);
  }
  for (const row of rows) {
    const tr = el("tr");
    row.forEach((cell) => tr.append(el("td", cell === null || cell === undefined ? "–" : String(cell))));
    t.append(tr);
  }
}

function topRows(report) {
  return report.rows
    .slice()
    .sort((a, b) => Number(b.gross) - Number(a.gross) || a.group.localeCompare(b.group))
    .slice(0, 10)
    .map((r) => [r.group, r.leads_sold, r.gross, r.margin, r.returns, r.net_margin]);
}

function percent(rate) {
  return rate === null || rate === undefined ? null : `${(rate * 100).toFixed(1)}%`;
}

async function show(event) {
  event.preventDefault();
  key = $("key").value.trim();
  const status = $("status");
  status.className = "";
  status.textContent = "Loading…";
  try {
    const [byDay, byBuyer, bySeller, auctions] = await Promise.all([
      api("/v1/reports/revenue", { group_by: "day" }).then((r) => r.json()),
      api("/v1/reports/revenue", { group_by: "buyer" }).then((r) => r.json()),
      api("/v1/reports/revenue", { group_by: "seller" }).then((r) => r.json()),
      api("/v1/reports/auctions", { group_by: "buyer" }).then((r) => r.json()),
    ]);
    for (const name of ["gross", "payouts", "margin", "net_margin", "leads_sold", "returns"]) {
      $(`total-${name}`).textContent = String(byDay.totals[name]);
    }
    $("total-returned_amount").textContent = `refunded ${byDay.totals.returned_amount}`;
    $("currency").textContent = byDay.currency;
    $("shown-tz").textContent = byDay.tz;
    drawChart(byDay);
    const headers = ["", "Leads", "Gross", "Margin", "Returns", "Net margin"];
    table("top-buyers", ["Buyer", ...headers.slice(1)], topRows(byBuyer));
    table("top-sellers", ["Seller", ...headers.slice(1)], topRows(bySeller));
    table(
      "auctions",
      ["Buyer", "Pings", "Bids", "Bid rate", "Avg bid", "Wins", "Posts accepted", "Rejected", "Accept rate", "Timeouts", "Errors"],
      auctions.rows.map((r) => [r.group, r.pings, r.bids, percent(r.bid_rate), r.average_bid, r.wins, r.posts_accepted, r.posts_rejected, percent(r.post_accept_rate), r.timeouts + r.post_timeouts, r.errors + r.post_errors]),
    );
    $("report").hidden = false;
    status.textContent = `${byDay.from} to ${byDay.to} (${byDay.tz})`;
  } catch (error) {
    $("report").hidden = true;
    status.className = "error";
    status.textContent = error.message;
  }
}

// Downloads need the key in a header, so the CSV is fetched and saved from memory.
async function download(event) {
  event.preventDefault();
  const link = event.currentTarget;
  const params = { format: "csv" };
  if (link.dataset.group) params.group_by = link.dataset.group;
  try {
    const response = await api(`/v1/reports/${link.dataset.csv}`, params);
    const blob = await response.blob();
    const name = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
    const save = el("a", null, { href: URL.createObjectURL(blob), download: name ? name[1] : "report.csv" });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(save.href), 10000);
  } catch (error) {
    $("status").className = "error";
    $("status").textContent = error.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const today = new Date();
  const start = new Date(today);
  start.setUTCDate(start.getUTCDate() - 29);
  $("from").value = isoDate(start);
  $("to").value = isoDate(today);
  try {
    $("tz").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch (_) { /* keep UTC */ }
  $("controls").addEventListener("submit", show);
  document.querySelectorAll("[data-csv]").forEach((a) => a.addEventListener("click", download));
});
