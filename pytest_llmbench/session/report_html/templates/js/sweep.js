/* Part 4: inside the server (each request's latency split into the server's parts), a sweep's SLO figures per
   level against the load, and a comparison's throughput against each user's speed. */
/* ---- inside the server: each request's latency split into the server's parts, and each part's percentiles ---- */
function breakdown() {
  var box = document.getElementById("breakdown-charts");
  if (!box) { return; }
  runs.forEach(function (run) {
    var b = run.breakdown;
    if (!b) { return; }
    var stacked = b.parts.map(function (part, pi) {
      return {label: part, data: b.values.map(function (v) { return v[pi]; }), backgroundColor: RUN_COLOURS[pi % RUN_COLOURS.length]};
    });
    draw(chartBox(box, label(run, "Where the time went, the slowest requests"), true), {type: "bar",
      data: {labels: b.ids, datasets: stacked}, options: {indexAxis: "y",
        scales: {x: {stacked: true, beginAtZero: true, title: {display: true, text: "ms of the client's latency"}},
          y: {stacked: true, ticks: {autoSkip: true}}}}});
    var marks = Object.keys(b.percentiles);
    if (!marks.length) { return; }
    var grouped = b.parts.map(function (part, pi) {
      return {label: part, data: marks.map(function (m) { return b.percentiles[m][pi]; }), backgroundColor: RUN_COLOURS[pi % RUN_COLOURS.length]};
    });
    draw(chartBox(box, label(run, "Each part's distribution")), {type: "bar", data: {labels: marks, datasets: grouped},
      options: {scales: {y: {beginAtZero: true, title: {display: true, text: "ms, each part's own percentile"}}}}});
  });
}

/* ---- sweep: each SLO's figure per level against the offered load, its limit dashed, each level labelled ---- */
var SWEEP_DEFAULT = [{key: "p99_latency_ms", text: "latency p99 (no SLO set)", limit: null}];
function sweepChart(box, title, yTitle, key, limit, xOf, xTitle) {
  var pick = function (l) { return l.values[key]; };
  var sets = [], xs = [];
  xOf = xOf || function (l) { return l.load; };
  runs.forEach(function (run, ri) {
    var s = run.sweep;
    if (!s) { return; }
    var points = s.levels.map(function (l) { return {x: xOf(l), y: pick(l), level: l.label, knee: l.knee,
        few: !!key && l.few.indexOf(key) >= 0}; })
      .filter(function (p) { return Number.isFinite(p.x) && Number.isFinite(p.y); });
    points.forEach(function (p) { xs.push(p.x); });
    sets.push({type: "line", label: label(run, title), data: points, borderColor: colour(ri), backgroundColor: colour(ri),
      levelLabels: true, pointRadius: points.map(function (p) { return p.knee ? 9 : 4; }),
      pointBackgroundColor: points.map(function (p) { return p.few ? "#fff" : colour(ri); }),  /* hollow: too few samples */
      pointStyle: points.map(function (p) { return p.knee ? "star" : "circle"; })});
  });
  if (limit !== null && xs.length) {
    var lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
    sets.push({type: "line", marker: true, mark: "limit " + limit, markAlign: "right", label: "SLO limit " + limit,
      data: [{x: lo, y: limit}, {x: hi, y: limit}], borderColor: "#b91c1c", borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0});
  }
  var first = runs.filter(function (r) { return r.sweep; })[0].sweep;
  draw(chartBox(box, title), {type: "line", data: {datasets: sets}, options: {
    scales: {x: {type: "linear", title: {display: true, text: xTitle || first.load_label}},
      y: {beginAtZero: true, title: {display: true, text: yTitle}}},
    plugins: {tooltip: {callbacks: {label: function (ctx) {
      return ctx.dataset.label + (ctx.raw.level ? " at " + ctx.raw.level : "") + ": " + ctx.raw.y.toFixed(2);
    }}}}}}, "no level has this figure");
}
function sweep() {
  var box = document.getElementById("sweep-charts");
  var swept = runs.filter(function (r) { return r.sweep; });
  if (!box || !swept.length) { return; }
  var slos = swept[0].sweep.slos.length ? swept[0].sweep.slos : SWEEP_DEFAULT;
  slos.forEach(function (slo) {
    var ms = /_ms$/.test(slo.key);
    sweepChart(box, slo.text, slo.key + (ms ? ", ms" : ""), slo.key, slo.limit);
  });
  sweepChart(box, "Goodput per level", "requests/s that met every per-test SLO", "goodput_throughput", null);
  sweepChart(box, "Throughput against each user's speed (Pareto)", "output tokens/s, all users", "output_throughput", null,
    function (l) { return l.values.p50_tpot_ms ? 1000 / l.values.p50_tpot_ms : null; },
    "output tokens/s per user (1000 / TPOT p50)");
}

/* ---- a comparison of runs: each run a point of the throughput / per-user speed trade-off ---- */
function pareto() {
  var box = document.getElementById("comparison-charts");
  if (!box) { return; }
  var sets = runs.map(function (run, ri) {
    return {type: "scatter", label: label(run, "Pareto"), data: run.pareto ? [Object.assign({level: run.label}, run.pareto)] : [],
      borderColor: colour(ri), backgroundColor: colour(ri), pointRadius: 6, levelLabels: true};
  });
  draw(chartBox(box, "Throughput against each user's speed (Pareto)"), {type: "scatter", data: {datasets: sets},
    options: {scales: {x: {beginAtZero: true, title: {display: true, text: "output tokens/s per user (1000 / TPOT p50)"}},
      y: {beginAtZero: true, title: {display: true, text: "output tokens/s, all users"}}}}},
    "no run has both a TPOT p50 and an output throughput (streamed runs have)");
}
