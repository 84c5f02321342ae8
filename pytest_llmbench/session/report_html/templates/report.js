/* pytest-llmbench report: draws the charts (Chart.js) and the test table from the JSON data island.
   Text from the runs reaches the page only through textContent and Chart.js's canvas: never as markup. */
(function () {
  "use strict";
  var started = performance.now();
  window.addEventListener("error", function () { window.llmbenchFailed = true; });  /* for tests, benchmarks */
  var data = JSON.parse(document.getElementById("llmbench-data").textContent);
  var runs = data.runs;
  var multi = runs.length > 1;
  var RUN_COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f"];
  var OUTCOME_COLOURS = {passed: "#16a34a", failed: "#d97706", error: "#dc2626"};
  var MARK_DASH = {p50: [2, 2], p90: [6, 3], p99: [10, 4]};
  var charts = [];
  window.llmbenchCharts = charts;

  /* Writes "p50", "p90", "p99" at the top of each percentile line (datasets flagged `marker`), a label that would
     overlap one already written a line lower; and each point's level (c4, rate=8) beside it on the sweep's charts
     (datasets flagged `levelLabels`). */
  Chart.register({id: "llmbenchLabels", afterDatasetsDraw: function (chart) {
    var ctx = chart.ctx, placed = [], top = chart.chartArea.top + 9;
    ctx.save();
    ctx.font = "10px system-ui, sans-serif";
    chart.data.datasets.forEach(function (d, i) {
      var meta = chart.getDatasetMeta(i);
      if (meta.hidden || !meta.data.length || !(d.marker || d.levelLabels)) { return; }
      ctx.fillStyle = d.borderColor;
      if (d.levelLabels) {
        ctx.textAlign = "left";
        meta.data.forEach(function (e, k) { ctx.fillText(d.data[k].level, e.x + 6, e.y - 6); });
        return;
      }
      var x = meta.data[1].x, y = Math.max(top, meta.data[1].y - 3), width = ctx.measureText(d.mark).width + 4;
      while (placed.some(function (p) { return Math.abs(p.y - y) < 10 && Math.abs(p.x - x) < (p.width + width) / 2; })) {
        y += 11;
      }
      placed.push({x: x, y: y, width: width});
      ctx.textAlign = d.markAlign || "center";
      ctx.fillText(d.mark, x, y);
    });
    ctx.restore();
  }});
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 11;

  function colour(i) { return RUN_COLOURS[i % RUN_COLOURS.length]; }
  function alpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + a + ")";
  }
  function make(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function drawnPoints(config) {
    return config.data.datasets.reduce(function (n, d) {
      return n + (d.marker ? 0 : d.data.filter(function (p) {
        var y = p !== null && typeof p === "object" ? p.y : p;
        return y !== null && y !== undefined && Number.isFinite(y);
      }).length);
    }, 0);
  }
  /* Instead of a chart with nothing on it: one line saying why, where the chart would be. */
  function noChart(canvas, why) {
    var box = canvas.closest(".chart") || canvas.parentNode;
    var note = make("p", "muted no-data", (box.querySelector("h3") ? box.querySelector("h3").textContent + ": " : "") + why);
    box.replaceWith(note);
    return null;
  }
  function draw(canvas, config, why) {
    if (!drawnPoints(config)) { return noChart(canvas, why || "no data to draw"); }
    canvas.setAttribute("role", "img");
    var heading = canvas.closest(".chart").querySelector("h3") || canvas.closest("section").querySelector("h2");
    canvas.setAttribute("aria-label", heading ? heading.textContent : "chart");
    config.options = config.options || {};
    var legend = config.options.plugins && config.options.plugins.legend;
    config.options.plugins = config.options.plugins || {};
    config.options.plugins.legend = legend || {labels: {filter: function (item, d) {
      return !d.datasets[item.datasetIndex].marker;
    }}};
    var chart = new Chart(canvas, config);
    charts.push(chart);
    return chart;
  }
  function chartBox(parent, title, tall) {
    var box = make("div", "chart" + (tall ? " tall" : ""));
    if (title) { box.appendChild(make("h3", null, title)); }
    var canvas = make("canvas");
    box.appendChild(canvas);
    parent.appendChild(box);
    return canvas;
  }
  function present(values) { return values.filter(function (v) { return v !== null && v !== undefined; }); }
  function label(run, text) { return multi ? run.label + " · " + text : text; }

  /* ---- distributions: histogram + empirical CDF per metric, p50/p90/p99 marked ---- */
  function metricValues(run, key) {
    return run.quantiles[key] || present(run.tests[key]);
  }
  function cdfPoints(sorted) {
    var n = sorted.length, m = Math.min(n, 400), out = [];
    for (var i = 0; i < m; i++) {
      var k = m === 1 ? 0 : Math.round(i * (n - 1) / (m - 1));
      out.push({x: sorted[k], y: (k + 1) / n});
    }
    return out;
  }
  function markers(run, ri, key, unit, top) {
    var sets = [];
    ["p50", "p90", "p99"].forEach(function (mark) {
      var value = (run.percentiles[key] || {})[mark];
      if (value === null || value === undefined) { return; }
      sets.push({type: "line", marker: true, mark: mark, label: label(run, mark + " " + value.toFixed(1) + " " + unit),
        data: [{x: value, y: 0}, {x: value, y: top}], borderColor: colour(ri), borderWidth: 1.5,
        borderDash: MARK_DASH[mark], pointRadius: 0, pointHitRadius: 6});
    });
    return sets;
  }
  function distributions() {
    var box = document.getElementById("distribution-charts");
    data.distributions.forEach(function (entry) {
      var key = entry[0], title = entry[1], unit = entry[2], note = entry[3], counted = entry[4];
      var series = runs.map(function (run) { return metricValues(run, key).slice().sort(function (a, b) { return a - b; }); });
      var all = [].concat.apply([], series);
      if (!all.length) { return; }
      var lo = Math.min.apply(null, series.map(function (s) { return s.length ? s[0] : Infinity; }));
      var hi = Math.max.apply(null, series.map(function (s) { return s.length ? s[s.length - 1] : -Infinity; }));
      /* a few far outliers would squeeze the rest into one bar: past 3x the 99th percentile's span, the bars stop at
         that percentile and the last one holds the tail (the axis says so; the CDF keeps the whole range) */
      var pooled = all.slice().sort(function (a, b) { return a - b; }), top = pooled[Math.floor(0.99 * (pooled.length - 1))];
      var clipped = pooled.length >= 20 && hi - lo > 3 * (top - lo) && top > lo ? top : null;
      var histHi = clipped === null ? hi : clipped;
      var bins = Math.max(10, Math.min(60, Math.round(Math.sqrt(all.length / runs.length))));
      var width = (histHi - lo) / bins || 1;
      var hist = [], cdf = [], histTop = 0;
      series.forEach(function (values, ri) {
        if (!values.length) { return; }
        var counts = new Array(bins).fill(0);
        values.forEach(function (v) { counts[Math.min(bins - 1, Math.floor((v - lo) / width))] += 1; });
        var points = counts.map(function (c, b) { return {x: lo + (b + 0.5) * width, y: 100 * c / values.length}; });
        points.forEach(function (p) { histTop = Math.max(histTop, p.y); });
        hist.push({type: "bar", label: label(runs[ri], title), data: points, backgroundColor: alpha(colour(ri), multi ? 0.45 : 0.7),
          borderColor: colour(ri), borderWidth: 1, barPercentage: 1, categoryPercentage: 1, grouped: false});
        cdf.push({type: "line", label: label(runs[ri], "CDF"), data: cdfPoints(values), borderColor: colour(ri),
          backgroundColor: colour(ri), pointRadius: 0, borderWidth: 2, stepped: true});
      });
      runs.forEach(function (run, ri) {
        hist = hist.concat(markers(run, ri, key, unit, histTop));
        cdf = cdf.concat(markers(run, ri, key, unit, 1));
      });
      var xAxis = {type: "linear", min: lo, max: hi + (hi === lo ? 1 : 0), ticks: {includeBounds: false},
        title: {display: true, text: title + ", " + unit + note}};
      var histAxis = Object.assign({}, xAxis, {max: histHi + (histHi === lo ? 1 : 0), title: {display: true,
        text: title + ", " + unit + note + (clipped === null ? "" : "; the last bar holds every value above " +
          clipped.toFixed(1) + " " + unit + " (max " + hi.toFixed(1) + ")")}});
      draw(chartBox(box, title + " — histogram"), {type: "bar", data: {datasets: hist}, options: {
        scales: {x: histAxis, y: {title: {display: true, text: "% of " + counted}, beginAtZero: true}}}});
      draw(chartBox(box, title + " — CDF"), {type: "line", data: {datasets: cdf}, options: {
        scales: {x: xAxis, y: {min: 0, max: 1, title: {display: true, text: "share at or below"}}}}});
    });
  }

  /* ---- per-request timeline: send time against latency, one dataset per outcome, category or model ---- */
  var timelineChart = null;
  var Y = data.timeline[0], Y_TITLE = data.timeline[1], Y_UNIT = data.timeline[2];
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
      data: {datasets: points.length ? points.concat(levelMarks(points)) : points},
      options: {scales: {x: {title: {display: true, text: "sent, s from the first request"}},
        y: {title: {display: true, text: Y_TITLE + ", " + Y_UNIT + " (errors at 0)"}, beginAtZero: true}},
        plugins: {tooltip: {callbacks: {label: function (ctx) {
          return ctx.raw.id + " — " + ctx.raw.outcome + ", " + ctx.raw.y.toFixed(1) + " " + Y_UNIT + " at " + ctx.raw.x.toFixed(2) + " s";
        }}}}}});
  }

  /* ---- time series given as columns {t: [...], name: [...]}: throughput, hardware, server ---- */
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
      return {type: "line", label: label(run, name), data: points, yAxisID: axisOf(name), borderColor: c,
        backgroundColor: c, pointRadius: 0, borderWidth: 1.5, borderDash: multi && ni % 2 ? [5, 3] : []};
    });
  }
  function seriesNames(columns) {
    var xKey = xKeyOf(columns);
    return Object.keys(columns).filter(function (k) { return k !== xKey && k !== "bucket_s" && present(columns[k]).length; });
  }
  /* A sweep's levels on a timeline: a dotted line where each level's first request was sent, named at its top. */
  function levelMarks(sets) {
    var top = Math.max.apply(null, sets.filter(function (d) { return (d.yAxisID || "y") === "y"; })
      .map(function (d) { return Math.max.apply(null, d.data.map(function (p) { return p.y; })); }));
    var marks = [];
    runs.forEach(function (run, ri) {
      (run.levels || []).forEach(function (level) {
        marks.push({type: "line", marker: true, mark: level[0], label: label(run, "level " + level[0]),
          data: [{x: level[1], y: 0}, {x: level[1], y: top}], borderColor: colour(ri), borderWidth: 1,
          borderDash: [2, 3], pointRadius: 0, yAxisID: "y"});
      });
    });
    return marks;
  }
  function timeChart(canvas, pick, axisOf, axes, marked) {
    var sets = [];
    runs.forEach(function (run, ri) {
      var columns = pick(run);
      if (columns && xKeyOf(columns)) { sets = sets.concat(columnSets(run, ri, columns, seriesNames(columns), axisOf)); }
    });
    if (!canvas) { return; }
    if (!sets.length) { return noChart(canvas, "no data to draw"); }
    if (sets.every(function (d) { return d.data.length < 2; })) {
      return noChart(canvas, "the run was shorter than one bucket of its timeline: nothing to draw over time");
    }
    if (sets.every(function (d) { return d.data.every(function (p) { return p.y === 0; }); })) {
      return noChart(canvas, "0 throughout the run");
    }
    if (marked) { sets = sets.concat(levelMarks(sets)); }
    var scales = {x: {type: "linear", title: {display: true, text: "s from the start"}}};
    Object.keys(axes).forEach(function (id, i) {
      scales[id] = {position: i ? "right" : "left", beginAtZero: true, title: {display: true, text: axes[id]},
        grid: {drawOnChartArea: i === 0}};
    });
    draw(canvas, {type: "line", data: {datasets: sets}, options: {scales: scales, interaction: {mode: "nearest", intersect: false}}});
  }
  function throughput() {
    timeChart(document.getElementById("chart-throughput"), function (run) { return run.timeline; },
      function (name) { return /token/.test(name) ? "y1" : "y"; },
      {y: "requests/s · in flight", y1: "tokens/s"}, true);
  }
  function hardware() {
    timeChart(document.getElementById("chart-hardware"), function (run) { return run.hardware; },
      function (name) { return /%/.test(name) ? "y" : "y1"; }, {y: "%", y1: "W · GB"});
  }
  function server() {
    var box = document.getElementById("server-charts");
    if (!box) { return; }
    var names = [];
    runs.forEach(function (run) {
      if (run.server && xKeyOf(run.server)) {
        seriesNames(run.server).forEach(function (n) { if (names.indexOf(n) < 0) { names.push(n); } });
      }
    });
    names.slice(0, 12).forEach(function (name) {
      timeChart(chartBox(box, name), function (run) {
        if (!run.server || !run.server[name]) { return null; }
        var cols = {}; cols[xKeyOf(run.server)] = run.server[xKeyOf(run.server)]; cols[name] = run.server[name];
        return cols;
      }, function () { return "y"; }, {y: name});
    });
  }

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

  /* ---- the table of every test: filter, sort, link to the completion file ---- */
  var COLUMNS = ["id", "name", "category", "model", "outcome"].concat(data.columns.map(function (c) { return c[0]; }))
    .concat(["tokens", "start"]);
  var TEXT_INDEXED = {category: true, model: true};
  var rows = [];
  runs.forEach(function (run, ri) { for (var i = 0; i < run.tests.id.length; i++) { rows.push([ri, i]); } });
  var sortKey = null, sortDir = 1, pageStart = 0;
  var PAGE_ROWS = 500;  /* a page of the table: 10,000 rows at once would take the browser seconds to lay out */
  function cell(ri, i, key) {
    if (key === "run") { return runs[ri].label; }
    var t = runs[ri].tests, v = t[key][i];
    return TEXT_INDEXED[key] ? t.texts[v] : v;
  }
  function compare(a, b) {
    var x = cell(a[0], a[1], sortKey), y = cell(b[0], b[1], sortKey);
    if (x === y) { return 0; }
    if (x === null || x === undefined) { return 1; }
    if (y === null || y === undefined) { return -1; }
    return (typeof x === "number" ? x - y : String(x).localeCompare(String(y))) * sortDir;
  }
  function renderTable() {
    var text = document.getElementById("test-filter").value.toLowerCase();
    var outcome = document.getElementById("test-outcome").value;
    var shown = rows.filter(function (r) {
      var t = runs[r[0]].tests, i = r[1];
      if (outcome && t.outcome[i] !== outcome) { return false; }
      if (!text) { return true; }
      return (t.id[i] + "\u0000" + t.name[i] + "\u0000" + t.texts[t.category[i]] + "\u0000" + t.texts[t.model[i]])
        .toLowerCase().indexOf(text) >= 0;
    });
    if (sortKey) { shown.sort(compare); }
    pageStart = Math.max(0, Math.min(pageStart, (Math.ceil(shown.length / PAGE_ROWS) - 1) * PAGE_ROWS));
    var count = shown.length;
    shown = shown.slice(pageStart, pageStart + PAGE_ROWS);
    var body = document.createDocumentFragment();
    var keys = (multi ? ["run"] : []).concat(COLUMNS);
    shown.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.className = runs[r[0]].tests.outcome[r[1]];
      keys.forEach(function (key) {
        var v = cell(r[0], r[1], key);
        tr.appendChild(make("td", typeof v === "number" ? "num" : null, v === null ? "—" : v));
      });
      var td = document.createElement("td"), file = runs[r[0]].tests.file[r[1]];
      if (file) { var a = make("a", null, "completion"); a.href = file; td.appendChild(a); }
      tr.appendChild(td);
      body.appendChild(tr);
    });
    var tbody = document.querySelector("#test-table tbody");
    tbody.replaceChildren(body);
    document.getElementById("test-count").textContent = count + " of " + rows.length + " tests" +
      (count > PAGE_ROWS ? ", rows " + (pageStart + 1) + "–" + (pageStart + shown.length) : "");
    document.getElementById("test-previous").disabled = pageStart === 0;
    document.getElementById("test-next").disabled = pageStart + PAGE_ROWS >= count;
    document.getElementById("test-pages").hidden = count <= PAGE_ROWS;
  }
  function turn(step) { return function () { pageStart += step * PAGE_ROWS; renderTable(); }; }
  function restart() { pageStart = 0; renderTable(); }
  function table() {
    document.querySelectorAll("#test-table th[data-key]").forEach(function (th) {
      th.addEventListener("click", function () {
        var key = th.getAttribute("data-key");
        sortDir = sortKey === key ? -sortDir : 1;
        sortKey = key;
        document.querySelectorAll("#test-table th").forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
        restart();
      });
    });
    document.getElementById("test-filter").addEventListener("input", restart);
    document.getElementById("test-outcome").addEventListener("change", restart);
    document.getElementById("test-previous").addEventListener("click", turn(-1));
    document.getElementById("test-next").addEventListener("click", turn(1));
    renderTable();
  }

  var timings = {start: started, parse: performance.now() - started};
  window.llmbenchTimings = timings;  /* ms per part, for benchmarks/report_html.py */
  [distributions, timeline, throughput, sweep, pareto, breakdown, hardware, server, table].forEach(function (part) {
    var t0 = performance.now();
    part();
    timings[part.name] = performance.now() - t0;
  });
  document.getElementById("timeline-colour").addEventListener("change", timeline);
  /* Printing: every folded part (options, run cards, failure groups) open, charts redrawn for the page's width. */
  function forPrint() {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
    charts.forEach(function (c) { c.resize(); });
  }
  window.addEventListener("beforeprint", forPrint);
  window.matchMedia("print").addEventListener("change", function (m) { if (m.matches) { forPrint(); } });
  window.llmbenchDrawnMs = performance.now() - started;
  window.llmbenchReady = true;
})();
