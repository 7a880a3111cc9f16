// hpo dashboard: one page, three views (#/ experiments, #/e/KEY experiment, #/e/KEY/t/ID
// trial), refreshed when the server says an experiment changed.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const view = document.getElementById("view");
let current = { route: null, charts: [] };
let refreshTimer = null;
// Rows of the trials table fetched at a time.
const TABLE_ROWS = 500;
// The best trials drawn in parallel coordinates.
const PARALLEL_TRIALS = 500;
// A trial's statuses, as the server names them.
const STATUSES = ["InProgress", "Paused", "Completed", "Stopped", "Failed"];
// How many of the best trials' learning curves may be drawn (the server sends at most 2,000).
const CURVE_CHOICES = [50, 500, 2000];

// What the user chose on an experiment's page (the table's order and filters, the curves
// drawn), kept across the redraws a live run causes.
const choices = new Map();
// The experiments ticked on the list for a comparison, kept across redraws too.
const picked = new Set();
function choicesOf(key) {
  if (!choices.has(key)) {
    choices.set(key, { sort: "best", order: "asc", shown: new Set(STATUSES), filter: "", curves: CURVE_CHOICES[0] });
  }
  return choices.get(key);
}

// A report (`hpo report`) carries its answers in the page: no server, no live updates.
const REPORT = window.HPO_REPORT || null;

function api(path) {
  if (REPORT) return Promise.resolve().then(() => fromReport(path));
  const url = "api/" + path + (token ? (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : "");
  return fetch(url).then((r) => {
    if (!r.ok) return r.text().then((t) => { throw new Error(r.status + ": " + t); });
    return r.json();
  });
}

// The server's answer to `path`, from a report: the trials table is sorted, filtered and
// paged here as the server would.
function fromReport(path) {
  const [encoded, query] = path.split("?");
  const route = encoded.split("/").map(decodeURIComponent).join("/");
  const params = new URLSearchParams(query || "");
  if (route.endsWith("/trials") && route in REPORT) {
    const statuses = params.has("status") ? params.get("status").split(",") : null;
    const sort = params.get("sort") || "id";
    const value = (t) => (sort === "id" ? t.id : ["status", "best", "reports"].includes(sort) ? t[sort]
      : sort.startsWith("last:") ? (t.last_metrics || {})[sort.slice(5)] : (t.config || {})[sort]);
    const missing = (v) => v === null || v === undefined;
    const clauses = (params.get("filter") || "").split(",").map((c) => c.trim()).filter((c) => c).map((c) => {
      const op = ["<=", ">=", "<", ">", "="].find((o) => c.includes(o));
      if (!op) throw new Error(`\`${c}\`: expected a parameter, one of <= >= < > =, and a value`);
      const [name, value] = [c.slice(0, c.indexOf(op)).trim(), c.slice(c.indexOf(op) + op.length).trim()];
      return (t) => {
        const v = (t.config || {})[name], x = Number(value);
        if (v === undefined) return false;
        if (typeof v !== "number" || isNaN(x)) return op === "=" && String(v) === value;
        return op === "<=" ? v <= x : op === ">=" ? v >= x : op === "<" ? v < x : op === ">" ? v > x : v === x;
      };
    });
    const rows = REPORT[route].rows.filter((t) => (!statuses || statuses.includes(t.status)) && clauses.every((f) => f(t))).sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      if (missing(x) || missing(y)) return missing(x) === missing(y) ? a.id - b.id : missing(x) ? 1 : -1;
      const c = x < y ? -1 : x > y ? 1 : a.id - b.id;
      return params.get("order") === "desc" ? -c : c;
    });
    const offset = Number(params.get("offset") || 0);
    return { total: rows.length, rows: rows.slice(offset, offset + Number(params.get("limit") || rows.length)) };
  }
  if (route in REPORT) return REPORT[route];
  throw new Error("This report holds the pages of each experiment's best 200 trials; " + route + " is not one of them.");
}

// Replaces the view's content (arrays among the children are spread).
function show(...children) {
  view.replaceChildren(...children.flat());
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") node.onclick = v;
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(3) : v.toPrecision(4);
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function seconds(s) {
  return s === null || s === undefined ? "" : s.toFixed(3) + " s";
}

function duration(s) {
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(1) + " h";
}

// A table whose columns sort on click: columns are [title, value(row), numeric].
function sortable(columns, rows, onRow) {
  let by = null, asc = true;
  const body = el("tbody");
  const render = () => {
    const sorted = by === null ? rows : [...rows].sort((a, b) => {
      const [x, y] = [columns[by][1](a), columns[by][1](b)];
      const c = x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1 : x < y ? -1 : 1;
      return asc ? c : -c;
    });
    body.replaceChildren(...sorted.map((r) => {
      const tr = el("tr", onRow ? { class: "link", onclick: () => onRow(r) } : {},
        columns.map(([, f, num]) => el("td", num ? { class: "num" } : {}, fmt(f(r)))));
      return tr;
    }));
  };
  const head = el("tr", {}, columns.map(([title, , num], i) => el("th", {
    class: num ? "num" : null,
    onclick: () => { asc = by === i ? !asc : true; by = i; render(); },
  }, title)));
  render();
  return el("table", {}, el("thead", {}, head), body);
}

function chart(title, xLabel, series, data, opts) {
  const holder = el("div", { class: "card" }, el("h2", {}, title));
  // Three charts to a row on a wide screen (cards are at least 460 px, see app.css).
  const width = 420;
  const plot = new uPlot(Object.assign({
    width, height: 260,
    scales: { x: { time: false } },
    axes: [{ label: xLabel }, { label: "" }],
    series: [{ label: xLabel }, ...series],
    legend: { show: series.length <= 8 },
  }, opts || {}), data, holder);
  current.charts.push(plot);
  return holder;
}

const DECISION_COLORS = { stop: "#b3261e", pause: "#c77700", promote: "#2aa05a" };

// On learning curves: the rung levels as dashed lines, a cross where a trial was stopped, a
// ring where it was paused, and a triangle where it was paused and later promoted (resumed).
function markDecisions(u, curves) {
  const ctx = u.ctx, scale = devicePixelRatio, [top, height] = [u.bbox.top, u.bbox.height];
  ctx.save();
  ctx.strokeStyle = "#8a8f99";
  ctx.setLineDash([4 * scale, 4 * scale]);
  for (const level of curves.rungs || []) {
    const x = u.valToPos(level, "x", true);
    ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.lineWidth = 1.5 * scale;
  const r = 3.5 * scale;
  for (const c of curves.curves) {
    for (const [px, py, decision] of c.points) {
      if (!(decision in DECISION_COLORS)) continue;
      const [x, y] = [u.valToPos(px, "x", true), u.valToPos(py, "y", true)];
      ctx.strokeStyle = DECISION_COLORS[decision];
      ctx.beginPath();
      if (decision === "stop") { ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y + r); ctx.moveTo(x + r, y - r); ctx.lineTo(x - r, y + r); }
      else if (decision === "pause") ctx.arc(x, y, r, 0, 2 * Math.PI);
      else { ctx.moveTo(x, y - r); ctx.lineTo(x + r, y + r); ctx.lineTo(x - r, y + r); ctx.closePath(); }
      ctx.stroke();
    }
  }
  ctx.restore();
}

const STATUS_COLORS = { Completed: "#2aa05a", Stopped: "#b3261e", Paused: "#c77700", Failed: "#222", InProgress: "#2f6fde" };

// Trials on workers: each stretch a trial ran as a bar on its lane, colored by how it ended.
function ganttChart(g) {
  const start = Math.min(...g.bars.map((b) => b[2]));
  const draw = (u) => {
    const ctx = u.ctx;
    ctx.save();
    for (const [, lane, from, to, status] of g.bars) {
      const x0 = u.valToPos(from, "x", true), x1 = u.valToPos(to === null ? g.now : to, "x", true);
      const y0 = u.valToPos(lane - 0.4, "y", true), y1 = u.valToPos(lane + 0.4, "y", true);
      ctx.fillStyle = STATUS_COLORS[status] || "#888";
      // A pixel of gap between one stretch and the next on a lane.
      ctx.fillRect(x0, Math.min(y0, y1), Math.max(1, x1 - x0 - devicePixelRatio), Math.abs(y1 - y0));
    }
    ctx.restore();
  };
  const opts = {
    scales: { x: { time: false }, y: { range: [-0.5, g.lanes - 0.5] } },
    legend: { show: false },
    axes: [{ label: "time (s)" }, { label: "worker slot", splits: () => [...Array(g.lanes).keys()] }],
    hooks: { draw: [draw] },
  };
  const shown = g.bars.length < g.runs ? ` (the latest ${g.bars.length} of ${g.runs})` : "";
  const hidden = { label: "", stroke: "transparent", points: { show: false } };
  return chart("Trials on workers" + shown, "time (s)", [hidden], [[start, g.now], [null, null]], opts);
}

// Several objectives: the first two against each other, the Pareto front as a staircase,
// the other feasible trials grey, the infeasible red.
function frontChart(f) {
  const [a, b] = f.objectives;
  const groups = [["Pareto front", f.front, "#2f6fde"], ["other feasible", f.others, "#8a8f99aa"], ["infeasible", f.infeasible, "#b3261eaa"]];
  const all = groups.flatMap(([, points], g) => points.map(([, v]) => [v[0], v[1], g])).sort((p, q) => p[0] - q[0]);
  const data = [all.map((p) => p[0]), ...groups.map((_, g) => all.map((p) => (p[2] === g ? p[1] : null)))];
  const series = groups.map(([label, points, color], g) => ({
    label: `${label} (${points.length})`, stroke: color, spanGaps: g === 0,
    paths: g === 0 ? uPlot.paths.stepped({ align: 1 }) : () => null,
    points: { show: true, size: g === 0 ? 7 : 4, fill: color },
  }));
  const card = chart(`Pareto front: ${b.metric} (${b.mode}) against ${a.metric} (${a.mode})`, a.metric, series, data, { legend: { show: true } });
  card.id = "front";
  return card;
}

// The parameters of a space in the search-space syntax, by name: every key but the list of
// forbidden combinations.
function parameters(space) {
  return Object.keys(space).filter((n) => !(n === "forbid" && Array.isArray(space[n]))).sort();
}

// Parallel coordinates: one axis per parameter (its range as observed, log domains in log;
// listed values at their positions), one line per trial, the best darkest and on top.
function parallelChart(rows, space, metric) {
  const names = parameters(space).filter((n) => space[n] !== null && typeof space[n] === "object");
  const axis = names.map((name) => {
    const kind = Object.keys(space[name]).find((k) => k !== "when");
    const listed = kind === "choice" || kind === "ordinal" ? space[name][kind].map((v) => JSON.stringify(v)) : null;
    const raw = (t) => (t.config || {})[name];
    const value = listed ? (t) => listed.indexOf(JSON.stringify(raw(t))) : kind.startsWith("log") ? (t) => Math.log(raw(t)) : raw;
    const seen = rows.map(value).filter((v) => typeof v === "number" && isFinite(v));
    const [low, high] = listed ? [0, listed.length - 1] : [Math.min(...seen), Math.max(...seen)];
    return (t) => { const v = value(t); return typeof v === "number" && isFinite(v) ? (high > low ? (v - low) / (high - low) : 0.5) : null; };
  });
  const worstFirst = [...rows].reverse();
  const series = worstFirst.map((t, i) => ({
    label: "trial " + t.id, width: 1, points: { show: false },
    stroke: `hsl(220 75% ${Math.round(85 - 60 * (i / Math.max(1, worstFirst.length - 1)))}%)`,
  }));
  const xs = names.map((_, i) => i);
  const data = [xs, ...worstFirst.map((t) => axis.map((f) => f(t)))];
  const slanted = names.length > 5;
  const opts = {
    legend: { show: false },
    padding: slanted ? [null, null, null, 70] : undefined,
    scales: { x: { time: false, range: [-0.2, names.length - 0.8] }, y: { range: [-0.05, 1.05] } },
    // Names slanted when many would overlap; an inactive parameter leaves a gap in its line.
    axes: [{ splits: () => xs, values: () => names, grid: { stroke: "#8a8f99", width: 1 },
      ...(slanted ? { rotate: 35, size: 80 } : {}) }, { show: false }],
  };
  return chart(`Parallel coordinates of the best ${rows.length} trials (darker: better ${metric})`, "parameter", series, data, opts);
}

// A parameter against the metric, one dot per trial (listed values at their positions,
// spread a little sideways so that equal values do not hide each other).
function sliceChart(slice, metric, trials) {
  const spread = (i) => (slice.labels ? (((i * 0.618034) % 1) - 0.5) * 0.5 : 0);
  const points = slice.points.map(([x, y], i) => [x + spread(i), y]).sort((a, b) => a[0] - b[0]);
  // Losses spread over decades: a log scale when every value is positive.
  const positive = points.every((p) => p[1] > 0);
  const opts = {
    scales: { x: { time: false, distr: slice.log ? 3 : 1 }, y: { distr: positive ? 3 : 1 } },
    legend: { show: false },
    axes: [slice.labels ? {
      label: slice.name,
      splits: () => slice.labels.map((_, i) => i),
      values: (u, splits) => splits.map((v) => String(slice.labels[v] ?? "")),
    } : { label: slice.name }, { label: metric }],
  };
  const dots = { label: metric, stroke: "#2f6fde", paths: () => null, points: { show: true, size: 4, fill: "#2f6fde66" } };
  return chart(`${slice.name} (${trials} trials)`, slice.name, [dots], [points.map((p) => p[0]), points.map((p) => p[1])], opts);
}

// Groups of curves with their quartile bands: [{label, median, q25, q75}] over xs.
function bandChart(title, xLabel, xs, groups) {
  const series = [], data = [xs], bands = [];
  groups.forEach((g, i) => {
    const color = `hsl(${(i * 67) % 360} 65% 42%)`;
    const first = series.length + 1;
    series.push({ label: g.label + " q75", stroke: color, width: 0.5, points: { show: false } });
    series.push({ label: g.label, stroke: color, width: 2, points: { show: false } });
    series.push({ label: g.label + " q25", stroke: color, width: 0.5, points: { show: false } });
    data.push(g.q75, g.median, g.q25);
    bands.push({ series: [first, first + 2], fill: `hsl(${(i * 67) % 360} 65% 42% / 0.15)` });
  });
  return chart(title, xLabel, series, data, { bands, legend: { show: true } });
}

async function showCompare(keys) {
  const c = await api("compare?keys=" + keys.map(encodeURIComponent).join(","));
  current.charts.forEach((ch) => ch.destroy());
  current.charts = [];
  const groups = c.groups.map((g) => ({ label: `${g.method} (${g.experiments.length})`, median: g.median, q25: g.q25, q75: g.q75 }));
  show(
    el("p", {}, el("a", { href: "#/" }, "← experiments")),
    el("h1", {}, "Comparison"),
    el("p", { class: "muted" }, "Best " + (c.metric || "value") + " so far: the median over each method's experiments, and its quartiles as a band."),
    c.metrics.length > 1 ? el("p", { class: "error" }, "These experiments measure different metrics (" + c.metrics.join(", ") + "): their values may not compare.") : "",
    el("div", { class: "cards" }, bandChart("Best so far against time", "time (s)", c.time, groups)),
    el("ul", {}, c.groups.map((g) => el("li", {}, g.method + ": ", g.experiments.join(", ")))),
  );
}

async function showBenchmark(key) {
  const b = await api("benchmarks/" + encodeURIComponent(key));
  current.charts.forEach((ch) => ch.destroy());
  current.charts = [];
  const methods = b.methods || [];
  const xs = methods.length ? methods[0].at.map((a) => a.time) : [];
  const groups = methods.map((m) => ({
    label: `${m.method} (${m.runs} runs)`,
    q25: m.at.map((a) => a.best[0]), median: m.at.map((a) => a.best[1]), q75: m.at.map((a) => a.best[2]),
  }));
  show(
    el("p", {}, el("a", { href: "#/" }, "← experiments")),
    el("h1", {}, "Benchmark " + key),
    el("p", { class: "muted" }, `hpo bench run on ${b.blackbox} with ${b.workers} workers: the median best ${b.metric} over runs, and its quartiles as a band.`),
    el("div", { class: "cards" }, bandChart("Best so far against simulated time", "simulated time (s)", xs, groups)),
  );
}

async function showList() {
  const [list, benches] = await Promise.all([api("experiments"), api("benchmarks")]);
  const rows = list.map((e) => ({ ...e, t: e.trials || {} }));
  const boxes = rows.map((e) => {
    const box = el("input", { type: "checkbox", checked: picked.has(e.key) ? "" : null });
    box.onchange = () => { box.checked ? picked.add(e.key) : picked.delete(e.key); };
    return el("label", {}, box, " " + e.key);
  });
  const compare = el("button", { onclick: () => { if (picked.size) location.hash = "#/compare/" + [...picked].map(encodeURIComponent).join(","); } }, "Compare");
  show(
    el("h1", {}, "Experiments"),
    rows.length === 0 ? el("p", { class: "muted" }, "No experiment folder yet: they appear here as `hpo run` makes them.") :
      el("div", { class: "scroll" }, sortable([
        ["experiment", (e) => e.key], ["status", (e) => e.status], ["metric", (e) => e.metric && e.metric + " (" + e.mode + ")"],
        ["best", (e) => e.best && e.best.value, true], ["trials", (e) => e.t.total, true], ["running", (e) => e.t.running, true],
        ["completed", (e) => e.t.completed, true], ["stopped", (e) => e.t.stopped, true], ["paused", (e) => e.t.paused, true],
        ["failed", (e) => e.t.failed, true], ["elapsed", (e) => e.elapsed_s, true], ["scheduler", (e) => e.scheduler],
        ["searcher", (e) => e.searcher], ["backend", (e) => e.backend],
      ], rows, (e) => { location.hash = "#/e/" + encodeURIComponent(e.key); })),
    rows.length > 1 && !REPORT ? [el("h2", {}, "Compare experiments on one plot"), el("div", { class: "filters", id: "compare" }, boxes, compare)] : "",
    benches.length ? [el("h2", {}, "Benchmarks (hpo bench run)"),
      el("ul", {}, benches.map((b) => el("li", {}, el("a", { href: "#/bench/" + encodeURIComponent(b.key) }, b.key), " ", el("span", { class: "muted" }, b.dir))))] : "",
  );
}

async function showExperiment(key) {
  const [e, curves, slices, gantt, importance, bestTrials, front] = await Promise.all([
    api("experiments/" + encodeURIComponent(key)),
    api("experiments/" + encodeURIComponent(key) + "/curves?top=" + choicesOf(key).curves),
    api("experiments/" + encodeURIComponent(key) + "/slices"),
    api("experiments/" + encodeURIComponent(key) + "/gantt"),
    api("experiments/" + encodeURIComponent(key) + "/importance"),
    api("experiments/" + encodeURIComponent(key) + "/trials?sort=best&status=InProgress,Paused,Completed,Stopped&limit=" + PARALLEL_TRIALS),
    api("experiments/" + encodeURIComponent(key) + "/front"),
  ]);
  const best = e.best_trial;
  const bestBox = el("div", { class: "best", id: "best" },
    best ? [el("div", {}, e.metric + " best: ", el("span", { class: "value", id: "best-value" }, fmt(best.value)),
      " (trial ", el("a", { href: "#/e/" + encodeURIComponent(key) + "/t/" + best.trial }, String(best.trial)), ")"),
      el("code", {}, JSON.stringify(best.config))] : el("span", { class: "muted" }, "No result yet."));
  const counts = e.trials || {};
  const header = el("p", {}, el("span", { class: "status-" + e.status }, e.status), " · ",
    el("span", { id: "trial-count" }, String(counts.total || 0)), " trials (", counts.running || 0, " running, ",
    counts.completed || 0, " completed, ", counts.stopped || 0, " stopped, ", counts.paused || 0, " paused, ",
    counts.failed || 0, " failed) · ", duration(e.elapsed_s || 0), " · ", e.scheduler || "", " + ", e.searcher || "default searcher");
  current.charts.forEach((c) => c.destroy());
  current.charts = [];
  const cards = el("div", { class: "cards" });
  if (front.objectives.length > 1 && front.front.length > 0) cards.append(frontChart(front));
  const points = e.best_so_far || [];
  if (points.length > 0) {
    // A step curve: the best holds until the next improvement, and to the latest time.
    const xs = points.map((p) => p[0]).concat([Math.max(e.elapsed_s || 0, points[points.length - 1][0])]);
    const ys = points.map((p) => p[1]).concat([points[points.length - 1][1]]);
    const steps = { paths: uPlot.paths.stepped({ align: 1 }) };
    cards.append(chart("Best so far against time", "time (s)", [{ label: e.metric, stroke: "#2f6fde", ...steps }], [xs, ys]));
    const ns = points.map((p) => p[3]).concat([counts.total || 0]);
    cards.append(chart("Best so far against trials", "trials started", [{ label: e.metric, stroke: "#2f6fde", ...steps }], [ns, ys]));
  }
  // Curves only when some trial reported more than once.
  if (curves.curves && curves.curves.some((c) => c.points.length > 1)) {
    const xs = [...new Set(curves.curves.flatMap((c) => c.points.map((p) => p[0])))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const data = [xs, ...curves.curves.map((c) => {
      const ys = new Array(xs.length).fill(null);
      c.points.forEach((p) => { ys[index.get(p[0])] = p[1]; });
      return ys;
    })];
    const series = curves.curves.map((c, i) => ({
      label: "trial " + c.trial, stroke: `hsl(${(i * 47) % 360} 60% 45%)`, spanGaps: true, width: 1,
      points: { show: false },
    }));
    const marks = { hooks: { draw: [(u) => markDecisions(u, curves)] } };
    const card = chart("Learning curves of the best " + curves.curves.length + " trials", curves.resource_attr || "report", series, data, marks);
    card.id = "curves";
    card.append(el("p", { class: "muted" }, "Dashed: rung levels. ✕ stopped, ○ paused, △ paused and promoted. ",
      REPORT ? "" : curveChoice(key)));
    cards.append(card);
  }
  const importanceCard = el("div", { class: "card", id: "importance" }, el("h2", {}, "Parameter importance (PED-ANOVA)"));
  if (importance.params) {
    importanceCard.append(el("table", {}, el("tbody", {}, importance.params.map((p) =>
      el("tr", {}, el("td", {}, p.name), el("td", { class: "num" }, p.importance.toFixed(3)),
        el("td", {}, el("span", { class: "bar", style: `width:${Math.round(p.importance * 200)}px` })))))),
      el("p", { class: "muted" }, `What sets the best ${importance.top_trials} of ${importance.trials} trials apart.`));
  } else {
    importanceCard.append(el("p", { class: "muted" }, importance.error || ""));
  }
  cards.append(importanceCard);
  if (gantt.bars && gantt.bars.length > 0) cards.append(ganttChart(gantt));
  const withResult = bestTrials.rows.filter((t) => t.best !== null);
  if (withResult.length > 1) cards.append(parallelChart(withResult, (e.spec && e.spec.space) || {}, e.metric));
  for (const slice of (slices.slices || [])) cards.append(sliceChart(slice, slices.metric, slices.trials));

  // The trials table is sorted and filtered by the server, a page at a time: an experiment
  // may hold 100,000 trials.
  const params = parameters((e.spec && e.spec.space) || {});
  const table = choicesOf(key);
  const tableHolder = el("div", { class: "scroll" });
  const note = el("p", { class: "muted", id: "trials-note" });
  const filterBox = el("input", { type: "text", size: 48, id: "trials-filter", placeholder: "filter: learning_rate <= 0.01, batch_size >= 64" });
  filterBox.value = table.filter;
  filterBox.oninput = () => { table.filter = filterBox.value; };
  filterBox.onchange = () => loadTable();
  const loadTable = async () => {
    let page;
    try {
      page = await api("experiments/" + encodeURIComponent(key) + "/trials?limit=" + TABLE_ROWS + "&sort=" +
        encodeURIComponent(table.sort) + "&order=" + table.order + "&status=" + [...table.shown].join(",") +
        "&filter=" + encodeURIComponent(filterBox.value));
    } catch (err) {
      note.textContent = String(err.message || err);
      return;
    }
    // Every config value, then the last value of every metric the page's trials reported.
    const metrics = [...new Set(page.rows.flatMap((t) => Object.keys(t.last_metrics || {})))].sort();
    const columns = [["trial", "id", (t) => t.id], ["status", "status", (t) => t.status],
      [e.metric + " (best)", "best", (t) => t.best], ["reports", "reports", (t) => t.reports],
      ...params.map((p) => [p, p, (t) => (t.config || {})[p]]),
      ...metrics.map((m) => ["last " + m, "last:" + m, (t) => (t.last_metrics || {})[m]])];
    note.textContent = page.total > page.rows.length
      ? `The first ${page.rows.length} of ${page.total} trials by ${table.sort} (${table.order === "asc" ? "ascending" : "descending"}); click a column to sort by it.`
      : `${page.total} trials.`;
    const head = el("tr", {}, columns.map(([title, sortKey], i) => el("th", {
      class: i === 1 ? null : "num",
      onclick: () => {
        table.order = table.sort === sortKey && table.order === "asc" ? "desc" : "asc";
        table.sort = sortKey;
        loadTable();
      },
    }, title + (table.sort === sortKey ? (table.order === "asc" ? " ▲" : " ▼") : ""))));
    const body = el("tbody", {}, page.rows.map((t) => el("tr", {
      class: "link", onclick: () => { location.hash = "#/e/" + encodeURIComponent(key) + "/t/" + t.id; },
    }, columns.map(([, , f], i) => el("td", i === 1 ? {} : { class: "num" }, fmt(f(t)))))));
    tableHolder.replaceChildren(el("table", {}, el("thead", {}, head), body));
  };
  const filters = el("div", { class: "filters" }, STATUSES.map((s) => {
    const box = el("input", { type: "checkbox", checked: table.shown.has(s) ? "" : null });
    box.onchange = () => { box.checked ? table.shown.add(s) : table.shown.delete(s); loadTable(); };
    return el("label", {}, box, " " + s);
  }), filterBox);
  await loadTable();
  show(el("h1", {}, e.name || key), header, bestBox,
    e.error ? el("p", { class: "error" }, e.error) : "", cards, el("h2", {}, "Trials"), filters, note, tableHolder);
}

async function showTrial(key, id) {
  const t = await api("experiments/" + encodeURIComponent(key) + "/trials/" + id);
  current.charts.forEach((c) => c.destroy());
  current.charts = [];
  const [e, reports] = [await api("experiments/" + encodeURIComponent(key)), t.history || []];
  const metricNames = [...new Set(reports.flatMap((r) => Object.keys(r.metrics)))];
  let curve = "";
  if (reports.length > 1 && e.metric) {
    const resource = e.spec && e.spec.resource_attr;
    const xs = reports.map((r, i) => (resource && r.metrics[resource] !== undefined ? r.metrics[resource] : i + 1));
    const ys = reports.map((r) => (r.metrics[e.metric] === undefined ? null : r.metrics[e.metric]));
    curve = el("div", { class: "cards" }, chart("Learning curve", resource || "report", [{ label: e.metric, stroke: "#2f6fde" }], [xs, ys]));
  }
  show(
    el("p", {}, el("a", { href: "#/e/" + encodeURIComponent(key) }, "← " + key)),
    el("h1", {}, "Trial " + t.id),
    el("p", {}, t.status, " · best ", fmt(t.best), " · ", t.reports, " reports · started at ", seconds(t.started),
      t.ended !== null ? " · ended at " + seconds(t.ended) : ""),
    el("code", {}, JSON.stringify(t.config)),
    t.error ? el("p", { class: "error" }, t.error) : "",
    curve,
    el("h2", {}, "Reports and decisions"),
    el("div", { class: "scroll" }, sortable([["time (s)", (r) => r.t, true], ["decision", (r) => r.decision],
      ...metricNames.map((m) => [m, (r) => r.metrics[m], true])], reports)),
    t.stdout !== null ? [el("h2", {}, "stdout (end)"), el("pre", {}, t.stdout)] : "",
    t.stderr !== null ? [el("h2", {}, "stderr (end)"), el("pre", {}, t.stderr)] : "",
  );
}

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "compare" && parts[1]) return { view: "compare", keys: parts[1].split(",") };
  if (parts[0] === "bench" && parts[1]) return { view: "bench", key: parts[1] };
  if (parts[0] === "e" && parts[1] && parts[2] === "t") return { view: "trial", key: parts[1], id: parts[3] };
  if (parts[0] === "e" && parts[1]) return { view: "experiment", key: parts[1] };
  return { view: "list" };
}

// How many learning curves to draw: the page is drawn again with the choice.
function curveChoice(key) {
  const chosen = choicesOf(key);
  const select = el("select", { id: "curves-shown" }, CURVE_CHOICES.map((n) =>
    el("option", { value: n, selected: n === chosen.curves ? "" : null }, "best " + n)));
  select.onchange = () => { chosen.curves = Number(select.value); render(); };
  return el("label", {}, "Draw the ", select);
}

async function render() {
  const r = route();
  current.route = r;
  // A redraw keeps the keyboard where it was (say, in the trials filter while a run goes on).
  const focused = document.activeElement && document.activeElement.id;
  try {
    if (r.view === "compare") await showCompare(r.keys);
    else if (r.view === "bench") await showBenchmark(r.key);
    else if (r.view === "trial") await showTrial(r.key, r.id);
    else if (r.view === "experiment") await showExperiment(r.key);
    else await showList();
  } catch (err) {
    show(el("p", { class: "error" }, String(err.message || err)));
  }
  const again = focused && document.getElementById(focused);
  if (again && again !== document.activeElement) {
    again.focus();
    if (again.type === "text") again.setSelectionRange(again.value.length, again.value.length);
  }
}

// Changes arrive as server-sent events; the view is redrawn at most once a second.
function listen() {
  const source = new EventSource("api/events" + (token ? "?token=" + encodeURIComponent(token) : ""));
  const dot = document.getElementById("live");
  source.onopen = () => dot.classList.add("on");
  source.onerror = () => dot.classList.remove("on");
  source.addEventListener("change", (event) => {
    const changed = JSON.parse(event.data).key;
    const r = current.route || {};
    if (r.view === "list" || r.key === changed) {
      if (!refreshTimer) refreshTimer = setTimeout(() => { refreshTimer = null; render(); }, 1000);
    }
  });
}

// A redraw the previous view had pending is not this view's.
window.addEventListener("hashchange", () => { clearTimeout(refreshTimer); refreshTimer = null; render(); });
render();
if (REPORT) {
  document.getElementById("home").textContent = "hpo report";
  document.getElementById("live").title = "a report: a snapshot, not live";
} else {
  listen();
}
