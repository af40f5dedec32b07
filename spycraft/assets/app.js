// SPDX-License-Identifier: AGPL-3.0-or-later
// The little the pages do in the browser: the dashboard follows the sensor (its figures every
// two seconds, its live calls at each call event), and the call page loads its ladder and
// messages. Text is always set as text, never as HTML.
"use strict";

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  row.appendChild(td);
  return td;
}

function fillTable(id, rows, columns) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const c of columns) cell(tr, c(r));
    body.appendChild(tr);
  }
}

function percent(v) { return v == null ? "–" : v.toFixed(1) + " %"; }

async function refreshLive() {
  const live = await (await fetch("/api/v1/live")).json();
  document.getElementById("live-count").textContent = live.open_legs;
  fillTable("live-calls", live.calls, [
    (c) => c.since, (c) => c.state, (c) => c.from_user, (c) => c.to_user,
    (c) => c.caller, (c) => c.callee, (c) => c.call_id,
  ]);
}

async function refreshFigures() {
  const d = await (await fetch("/api/v1/dashboard")).json();
  document.getElementById("cps").textContent = d.calls_per_second;
  document.getElementById("ratios-5m").textContent = percent(d.last_5m.asr) + " / " + percent(d.last_5m.ner);
  document.getElementById("ratios-1h").textContent = percent(d.last_1h.asr) + " / " + percent(d.last_1h.ner);
  fillTable("failures", d.top_failures, [(f) => f.status, (f) => f.calls]);
  const most = Math.max(1, ...d.srd_histogram.map((b) => b.calls));
  const body = document.querySelector("#srd tbody");
  body.replaceChildren();
  for (const { upto: bound, calls: n } of d.srd_histogram) {
    const tr = document.createElement("tr");
    cell(tr, bound); cell(tr, n);
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = Math.round((n / most) * 200) + "px";
    cell(tr, "").appendChild(bar);
    body.appendChild(tr);
  }
  document.getElementById("capture").textContent = d.capture;
  const troubles = document.getElementById("troubles");
  troubles.replaceChildren();
  for (const t of d.output_troubles) {
    const li = document.createElement("li");
    li.textContent = t;
    troubles.appendChild(li);
  }
}

function dashboard() {
  refreshLive(); refreshFigures();
  setInterval(refreshFigures, 2000);
  // Each call event refreshes the list at once; a slow timer catches anything missed.
  const events = new EventSource("/api/v1/live/events");
  for (const name of ["started", "answered", "ended", "recorded", "lagged"]) {
    events.addEventListener(name, refreshLive);
  }
  setInterval(refreshLive, 5000);
}

async function callPage() {
  const ladder = document.getElementById("ladder");
  if (ladder) {
    const svg = await fetch(ladder.dataset.src);
    if (svg.ok) {
      // The sensor's own SVG, drawn from escaped text.
      ladder.innerHTML = await svg.text();
    }
  }
  const messages = document.getElementById("messages");
  if (messages) {
    const list = await fetch(messages.dataset.src);
    if (!list.ok) return;
    for (const m of await list.json()) {
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = m.time + "  " + m.src + " → " + m.dst + "  " + m.label;
      const pre = document.createElement("pre");
      pre.textContent = m.text;
      details.append(summary, pre);
      messages.appendChild(details);
    }
  }
}

if (window.spycraftPage === "dashboard") dashboard();
if (window.spycraftPage === "call") callPage();
