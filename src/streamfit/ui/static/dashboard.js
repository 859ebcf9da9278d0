// streamfit dashboard: polls the /v1 API and redraws with plotly.js (served from the
// installed plotly package). Our own code; no framework.
"use strict";

const POLL_MS = 2000;
const COLORS = ["#1f6feb", "#d9480f", "#2b8a3e", "#9c36b5", "#e8590c", "#0c8599"];
const key = (new URLSearchParams(location.hash.slice(1))).get("key");
const layout = (extra) => Object.assign({
  margin: {l: 50, r: 20, t: 10, b: 40}, legend: {orientation: "h", y: -0.2},
  xaxis: {type: "date"}, uirevision: "keep",
}, extra || {});
const config = {displaylogo: false, responsive: true};

// what the page knows; `updates` counts the polls that redrew (read by the browser test)
const state = {
  pipeline: null, task: null, models: [], metrics: new Map(), metricsSince: null,
  field: null, anomaliesAfter: null, anomalies: [], deadAfter: null, dead: [],
  updates: 0, errors: 0,
};
window.streamfitDashboard = state;

async function get(path) {
  const headers = key ? {"X-API-Key": key} : {};
  const response = await fetch(path, {headers});
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

const q = (params) => {
  const parts = Object.entries(params).filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`);
  return parts.length ? `?${parts.join("&")}` : "";
};
const base = () => `/v1/pipelines/${encodeURIComponent(state.pipeline)}`;
const fmt = (x, digits) => x === null || x === undefined ? "–"
  : (typeof x === "number" ? x.toLocaleString(undefined, {maximumFractionDigits: digits ?? 0}) : x);

function figure(label, value) {
  return `<div class="figure"><b>${value}</b><span>${label}</span></div>`;
}

// -- status, throughput, lag ------------------------------------------------------------------

async function drawStatus() {
  const s = await get(`${base()}/status`);
  const c = s.counters;
  const age = s.last_checkpoint.age_seconds;
  const serving = Object.entries(s.serving).map(([m, v]) => `${m} v${v}`).join(", ");
  document.getElementById("state").textContent =
    `${s.mode === "worker" ? "live from the worker" : "from the store"}` +
    `${s.running ? ", running" : ""}`;
  const totalLag = s.lag.reduce((sum, p) => sum + p.lag, 0);
  document.getElementById("figures").innerHTML = [
    figure("events in", fmt(c.events_in)),
    figure("events/s", fmt(c.events_per_second)),
    figure("learned", fmt(c.events_trained)),
    figure("scored", fmt(c.events_scored)),
    figure("dead letters", fmt(c.dead_letters)),
    figure("lag", fmt(totalLag)),
    figure("last checkpoint", age === null ? "–" : `${fmt(age, 1)} s ago`),
    figure("serving", serving || "–"),
  ].join("");
  Plotly.react("lag", [{
    type: "bar", x: s.lag.map((p) => `${p.topic}[${p.partition}]`), y: s.lag.map((p) => p.lag),
    marker: {color: COLORS[0]}, name: "lag",
  }], layout({xaxis: {type: "category"}, yaxis: {title: "events behind"}}), config);
}

async function drawThroughput() {
  const t = await get(`${base()}/throughput`);
  const x = t.points.map((p) => p.at);
  Plotly.react("throughput", [
    {x, y: t.points.map((p) => p.events_per_second), name: "events/s", mode: "lines",
     line: {color: COLORS[0]}},
    {x, y: t.points.map((p) => p.dead_letters), name: "dead letters", mode: "lines",
     yaxis: "y2", line: {color: COLORS[1], dash: "dot"}},
  ], layout({yaxis: {title: "events/s", rangemode: "tozero"},
             yaxis2: {overlaying: "y", side: "right", rangemode: "tozero"}}), config);
}

// -- model quality ----------------------------------------------------------------------------

async function drawQuality() {
  const since = state.metricsSince;
  const series = await get(`${base()}/metrics${q({since, limit: 5000})}`);
  for (const p of series.points) {
    const id = `${p.model}|${p.worker}|${p.events_seen}`;
    state.metrics.set(id, p);
    if (!state.metricsSince || p.recorded_at > state.metricsSince) state.metricsSince = p.recorded_at;
  }
  const points = [...state.metrics.values()].sort((a, b) => a.recorded_at < b.recorded_at ? -1 : 1);
  const select = document.getElementById("metric");
  const names = new Set();
  points.forEach((p) => Object.keys(p.metrics).forEach((m) => names.add(m)));
  const windowed = [...names].filter((m) => m.startsWith("window_")).sort();
  if (windowed.length && select.options.length !== windowed.length) {
    const preferred = ["window_roc_auc", "window_rmse", "window_accuracy"].find((m) => names.has(m));
    const current = select.value || preferred || windowed[0];
    select.innerHTML = windowed.map((m) => `<option>${m}</option>`).join("");
    select.value = current;
  }
  const metric = select.value;
  const models = await get(`${base()}/models`);
  const traces = models.map((m, i) => {
    const mine = points.filter((p) => p.model === m.name && p.metrics[metric] !== undefined);
    return {
      x: mine.map((p) => p.recorded_at), y: mine.map((p) => p.metrics[metric]),
      name: m.serving ? `${m.name} (serving, v${m.version})` : `${m.name} v${m.version ?? "–"}`,
      mode: "lines", line: {color: COLORS[i % COLORS.length], width: m.serving ? 4 : 1.5,
                            dash: m.serving ? "solid" : "dot"},
      customdata: mine.map((p) => p.events_seen),
      hovertemplate: "%{y:.4f} after %{customdata} events<extra>%{fullData.name}</extra>",
    };
  });
  Plotly.react("quality", traces, layout({yaxis: {title: metric}}), config);
}

// -- field statistics -------------------------------------------------------------------------

async function drawStatistics() {
  const stats = await get(`${base()}/statistics`);
  const select = document.getElementById("field");
  const names = stats.fields.map((f) => f.field);
  if (names.join("\n") !== [...select.options].map((o) => o.value).join("\n")) {
    // a numeric field first: it has a histogram and quantiles
    const numeric = stats.fields.find((f) => f.figures.histogram || f.figures.p50 !== undefined && f.figures.p50 !== null);
    const current = select.value || (numeric ? numeric.field : names[0]);
    select.innerHTML = names.map((n) => `<option></option>`).join("");
    [...select.options].forEach((o, i) => { o.value = names[i]; o.textContent = names[i]; });
    if (current) select.value = current;
  }
  state.field = select.value || null;
  if (!state.field) {
    Plotly.react("histogram", [], layout({annotations: [note("no field statistics yet")]}), config);
    Plotly.react("bands", [], layout({annotations: [note("no field statistics yet")]}), config);
    return;
  }
  const latest = stats.fields.find((f) => f.field === state.field);
  const histogram = latest && latest.figures.window_histogram || latest && latest.figures.histogram;
  if (histogram && histogram.edges) {
    const mids = histogram.counts.map((_, i) => (histogram.edges[i] + histogram.edges[i + 1]) / 2);
    Plotly.react("histogram", [{type: "bar", x: mids, y: histogram.counts,
      marker: {color: COLORS[0]}, name: "recent window"}],
      layout({xaxis: {type: "linear", title: state.field}, bargap: 0.02}), config);
  } else {
    const top = latest && (latest.figures.window_top_values || latest.figures.top_values) || [];
    const values = Array.isArray(top) ? top : Object.entries(top).map(([value, count]) => ({value, count}));
    Plotly.react("histogram", [{type: "bar", x: values.map((v) => String(v.value ?? v[0])),
      y: values.map((v) => v.count ?? v[1]), marker: {color: COLORS[0]}, name: "top values"}],
      layout({xaxis: {type: "category"},
              annotations: values.length ? [] : [note("no value frequent enough to show")]}), config);
  }
  const history = await get(`${base()}/statistics/${encodeURIComponent(state.field)}${q({limit: 500})}`);
  const rows = history.fields;
  const x = rows.map((r) => r.recorded_at);
  const col = (name) => rows.map((r) => r.figures[name] ?? null);
  const band = (low, high, color, label) => [
    {x, y: col(low), mode: "lines", line: {width: 0}, showlegend: false, hoverinfo: "skip"},
    {x, y: col(high), mode: "lines", line: {width: 0}, fill: "tonexty", fillcolor: color, name: label},
  ];
  const has = (name) => rows.some((r) => r.figures[name] !== undefined && r.figures[name] !== null);
  const traces = [];
  if (has("p05") && has("p95")) traces.push(...band("p05", "p95", "rgba(31,111,235,.15)", "p05–p95"));
  if (has("p25") && has("p75")) traces.push(...band("p25", "p75", "rgba(31,111,235,.3)", "p25–p75"));
  if (has("p50")) traces.push({x, y: col("p50"), mode: "lines", name: "median", line: {color: COLORS[0]}});
  if (has("mean")) traces.push({x, y: col("mean"), mode: "lines", name: "mean", line: {color: COLORS[1], dash: "dot"}});
  Plotly.react("bands", traces, layout({yaxis: {title: state.field},
    annotations: traces.length ? [] : [note("no quantiles for this field")]}), config);
}

function note(text) {
  return {text, xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false};
}

// -- anomalies and dead letters ---------------------------------------------------------------

async function drawAnomalies() {
  const page = await get(`${base()}/anomalies${q({after: state.anomaliesAfter, limit: 500})}`);
  state.anomalies.push(...page.rows);
  state.anomalies = state.anomalies.slice(-2000);
  state.anomaliesAfter = page.next;
  const quantileNames = new Set();
  state.metrics.forEach((p) => Object.keys(p.metrics).forEach((m) => {
    if (/^(window_)?score_p\d/.test(m)) quantileNames.add(m);
  }));
  const traces = [];
  const points = [...state.metrics.values()].sort((a, b) => a.recorded_at < b.recorded_at ? -1 : 1);
  [...quantileNames].sort().forEach((name, i) => {
    const mine = points.filter((p) => p.metrics[name] !== undefined);
    traces.push({x: mine.map((p) => p.recorded_at), y: mine.map((p) => p.metrics[name]),
      mode: "lines", name, line: {color: COLORS[(i + 2) % COLORS.length], dash: "dash"}});
  });
  if (state.anomalies.length) {
    traces.push({x: state.anomalies.map((r) => r.processed_at),
      y: state.anomalies.map((r) => r.anomaly_score), mode: "markers", name: "flagged events",
      marker: {color: COLORS[1], size: 7},
      text: state.anomalies.map((r) => `${r.source_topic}[${r.source_partition}]@${r.source_offset}`)});
  }
  document.getElementById("anomaly-note").textContent = traces.length ? ""
    : "(no anomaly scores in this pipeline)";
  Plotly.react("anomalies", traces, layout({yaxis: {title: "anomaly score"},
    annotations: traces.length ? [] : [note("no anomaly scores yet")]}), config);
}

async function drawDeadLetters() {
  const page = await get(`${base()}/dead-letters${q({after: state.deadAfter, limit: 100})}`);
  state.dead.push(...page.rows);
  state.dead = state.dead.slice(-50);
  state.deadAfter = page.next;
  const body = document.querySelector("#dead-letters tbody");
  body.innerHTML = "";
  for (const row of [...state.dead].reverse()) {
    const tr = document.createElement("tr");
    for (const value of [row.recorded_at, row.source_topic, row.source_partition,
                         row.source_offset, row.reason]) {
      const td = document.createElement("td");
      td.textContent = String(value);  // text, never HTML: reasons quote event data
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  document.getElementById("dead-count").textContent = `(latest ${state.dead.length})`;
}

// -- the loop ---------------------------------------------------------------------------------

async function poll() {
  try {
    await drawStatus();
    await Promise.all([drawThroughput(), drawQuality(), drawStatistics(), drawDeadLetters()]);
    await drawAnomalies();
    state.updates += 1;
  } catch (error) {
    state.errors += 1;
    document.getElementById("state").textContent = `cannot reach the API (${error.message})`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function reset() {
  Object.assign(state, {metrics: new Map(), metricsSince: null, anomaliesAfter: null,
                        anomalies: [], deadAfter: null, dead: []});
}

async function start() {
  const pipelines = await get("/v1/pipelines");
  const select = document.getElementById("pipeline");
  select.innerHTML = "";
  for (const p of pipelines) {
    const option = document.createElement("option");
    option.value = p.name;
    option.textContent = p.name;
    select.appendChild(option);
  }
  state.pipeline = pipelines.length ? pipelines[0].name : null;
  select.addEventListener("change", () => { state.pipeline = select.value; reset(); });
  document.getElementById("metric").addEventListener("change", () => drawQuality());
  document.getElementById("field").addEventListener("change", () => drawStatistics());
  if (state.pipeline) poll();
}

start().catch((error) => {
  document.getElementById("state").textContent = `cannot reach the API (${error.message})`;
});
