/* Part 3: timelines — each request's send time against its latency; throughput, hardware and the server's metrics
   over time, all on the client's time axis (seconds from the first measured request), with a sweep's levels and
   the warm-up marked. */
var MAX_LINES = 6;  /* more lines than this in one chart of several runs: one chart per metric, a line per run */
var timelineChart = null;
var Y = data.timeline[0], Y_TITLE = data.timeline[1], Y_UNIT = data.timeline[2];
var X_TITLE = "s from the first request";
function timeline() {
  var mode = document.getElementById("timeline-colour").value;
  var groups = {}, order = [];
  runs.forEach(function (run, ri) {
    var t = run.tests;
    for (var i = 0; i < t.id.length; i++) {
      if (t.start[i] === null || t[Y][i] === null && t.outcome[i] !== "error") { continue; }
      var name = mode === "outcome" ? t.outcome[i] : t.texts[t[mode][i]] || "(none)";
      var keyName = (multi ? run.label + " · " : "") + name;
      if (!groups[keyName]) {
        var c = multi ? colour(ri) : mode === "outcome" ? OUTCOME_COLOURS[name] : RUN_COLOURS[order.length % RUN_COLOURS.length];
        var shapes = ["circle", "rectRot", "triangle", "crossRot", "rect", "star"];
        groups[keyName] = {label: keyName, data: [], backgroundColor: alpha(c, 0.65), borderColor: c,
          pointRadius: 2.5, pointHoverRadius: 5,
          pointStyle: multi ? shapes[order.filter(function (k) { return groups[k].run === ri; }).length % shapes.length] : "circle",
          run: ri};
        order.push(keyName);
      }
      groups[keyName].data.push({x: t.start[i], y: t[Y][i] === null ? 0 : t[Y][i], id: t.id[i],
        outcome: t.outcome[i]});
    }
  });
  if (timelineChart) { timelineChart.destroy(); charts.splice(charts.indexOf(timelineChart), 1); }
  var points = order.map(function (k) { return groups[k]; });
  timelineChart = draw(document.getElementById("chart-timeline"), {type: "scatter",
    data: {datasets: points.length ? points.concat(levelMarks(points, runs)) : points},
    options: {scales: {x: {title: {display: true, text: "sent, " + X_TITLE}},
      y: {title: {display: true, text: Y_TITLE + ", " + Y_UNIT + " (errors at 0)"}, beginAtZero: true}},
      plugins: {tooltip: {callbacks: {label: function (ctx) {
        return ctx.raw.id + " — " + ctx.raw.outcome + ", " + ctx.raw.y.toFixed(1) + " " + Y_UNIT + " at " + ctx.raw.x.toFixed(2) + " s";
      }}}}}});
}

/* ---- time series given as columns {t: [...], name: [...]} ---- */
var X_KEYS = ["t", "t_s", "time_s", "elapsed_s", "second"];
function xKeyOf(columns) {
  for (var i = 0; i < X_KEYS.length; i++) { if (columns[X_KEYS[i]]) { return X_KEYS[i]; } }
  return null;
}
function columnSets(run, ri, columns, names, axisOf) {
  var xKey = xKeyOf(columns);
  return names.map(function (name, ni) {
    var points = [];
    columns[xKey].forEach(function (x, i) { if (x !== null && columns[name][i] !== null) { points.push({x: x, y: columns[name][i]}); } });
    var c = multi ? colour(ri) : RUN_COLOURS[ni % RUN_COLOURS.length];
    return {type: "line", label: label(run, name), data: points, yAxisID: axisOf(name), borderColor: c, name: name,
      backgroundColor: c, pointRadius: 0, borderWidth: 1.5, borderDash: multi && ni % 2 ? [5, 3] : []};
  });
}
function seriesNames(columns) {
  var xKey = xKeyOf(columns);
  return Object.keys(columns).filter(function (k) { return k !== xKey && k !== "bucket_s" && present(columns[k]).length; });
}
function topOf(sets) {
  return Math.max.apply(null, sets.filter(function (d) { return !d.marker && (d.yAxisID || "y") === "y"; })
    .map(function (d) { return Math.max.apply(null, d.data.map(function (p) { return p.y; })); }));
}
/* A sweep's levels (a dotted line where each level's first request was sent, named at its top) and the warm-up
   (a shaded span before the first measured request), of each run drawn. */
function levelMarks(sets, drawn) {
  var top = topOf(sets), marks = [];
  drawn.forEach(function (run) {
    var ri = runs.indexOf(run);
    (run.levels || []).forEach(function (level) {
      marks.push({type: "line", marker: true, mark: level[0], label: label(run, "level " + level[0]),
        data: [{x: level[1], y: 0}, {x: level[1], y: top}], borderColor: colour(ri), borderWidth: 1,
        borderDash: [2, 3], pointRadius: 0, yAxisID: "y"});
    });
    if (run.warmup) {
      marks.push(band(run.warmup[0], run.warmup[1], top, label(run, "warm-up (" + run.warmup[2] + " requests)")));
    }
  });
  return marks;
}
function axesOf(axes, xTitle) {
  var scales = {x: {type: "linear", title: {display: true, text: xTitle}}};
  Object.keys(axes).forEach(function (id, i) {
    scales[id] = {position: i ? "right" : "left", beginAtZero: true, title: {display: true, text: axes[id]},
      grid: {drawOnChartArea: i === 0}};
  });
  return scales;
}
/* One chart per metric, a line per run, in place of `canvas`'s chart: several runs' series would crowd one. */
function perMetric(canvas, sets, axisOf, axes, marked, xTitle) {
  var box = canvas.closest(".chart"), grid = make("div", "grid2 per-metric");
  box.replaceWith(grid);
  var names = [];
  sets.forEach(function (d) { if (names.indexOf(d.name) < 0) { names.push(d.name); } });
  names.forEach(function (name) {
    var own = sets.filter(function (d) { return d.name === name; }).map(function (d) {
      return Object.assign({}, d, {yAxisID: "y", borderDash: []});
    });
    var scale = {y: axes[axisOf(name)]}, canvas = chartBox(grid, name);
    if (own.every(function (d) { return d.data.every(function (p) { return p.y === 0; }); })) {
      return noChart(canvas, "0 throughout every run");
    }
    draw(canvas, {type: "line", data: {datasets: marked ? own.concat(levelMarks(own, runs)) : own},
      options: {scales: axesOf(scale, xTitle), interaction: {mode: "nearest", intersect: false}}});
  });
}
function timeChart(canvas, pick, axisOf, axes, marked, xTitle) {
  var sets = [], drawn = [];
  runs.forEach(function (run, ri) {
    var columns = pick(run);
    if (columns && xKeyOf(columns)) {
      sets = sets.concat(columnSets(run, ri, columns, seriesNames(columns), axisOf));
      drawn.push(run);
    }
  });
  if (!canvas) { return; }
  if (!sets.length) { return noChart(canvas, "no data to draw"); }
  if (sets.every(function (d) { return d.data.length < 2; })) {
    return noChart(canvas, "the run was shorter than one bucket of its timeline: nothing to draw over time");
  }
  if (sets.every(function (d) { return d.data.every(function (p) { return p.y === 0; }); })) {
    return noChart(canvas, "0 throughout the run");
  }
  if (multi && sets.length > MAX_LINES) { return perMetric(canvas, sets, axisOf, axes, marked, xTitle); }
  if (marked) { sets = sets.concat(levelMarks(sets, drawn)); }
  draw(canvas, {type: "line", data: {datasets: sets}, options: {scales: axesOf(axes, xTitle), interaction: {mode: "nearest", intersect: false}}});
}
function throughput() {
  timeChart(document.getElementById("chart-throughput"), function (run) { return run.timeline; },
    function (name) { return /token/.test(name) ? "y1" : "y"; },
    {y: "requests/s · in flight", y1: "tokens/s"}, true, X_TITLE);
}
function aligned(part) { return runs.every(function (run) { return !run[part] || run[part + "_aligned"]; }); }
function hardware() {
  timeChart(document.getElementById("chart-hardware"), function (run) { return run.hardware; },
    function (name) { return /%/.test(name) ? "y" : "y1"; }, {y: "%", y1: "W · GB"}, aligned("hardware"),
    aligned("hardware") ? X_TITLE : "s from the monitor's first sample");
}
/* The server's series, each its own chart, named as the server catalog names them. The server's and the hardware
   monitor's timelines are on the client's time axis when the batch says when their first reading came (else from
   that reading, as the axis then says). */
function server() {
  var box = document.getElementById("server-charts");
  if (!box) { return; }
  var names = [];
  runs.forEach(function (run) {
    if (run.server && xKeyOf(run.server)) {
      seriesNames(run.server).forEach(function (n) { if (names.indexOf(n) < 0) { names.push(n); } });
    }
  });
  var onAxis = aligned("server");
  names.slice(0, 12).forEach(function (name) {
    timeChart(chartBox(box, name), function (run) {
      if (!run.server || !run.server[name]) { return null; }
      var cols = {}; cols[xKeyOf(run.server)] = run.server[xKeyOf(run.server)]; cols[name] = run.server[name];
      return cols;
    }, function () { return "y"; }, {y: name}, onAxis, onAxis ? X_TITLE : "s from the first scrape");
  });
}
