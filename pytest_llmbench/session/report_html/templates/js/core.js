/* pytest-llmbench report, part 1 (render.py joins core, distributions, timelines, sweep, table and main, in this
   order, inside one function): the data, the colours, the charts' label plugin and what every chart is made with.
   Text from the runs reaches the page only through textContent and Chart.js's canvas: never as markup. */
var started = performance.now();
window.addEventListener("error", function () { window.llmbenchFailed = true; });  /* for tests, benchmarks */
var data = JSON.parse(document.getElementById("llmbench-data").textContent);
var runs = data.runs;
var multi = runs.length > 1;
var RUN_COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f"];
var BASELINE_COLOUR = "#6b7280";  /* the --llmbench-compare baseline beside a run: grey, the run keeps its own */
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
/* Removes the charts drawn inside `box` (to draw them again, for another level) and the box's content. */
function clearCharts(box) {
  charts.filter(function (c) { return box.contains(c.canvas); }).forEach(function (c) {
    c.destroy();
    charts.splice(charts.indexOf(c), 1);
  });
  box.replaceChildren();
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
/* A shaded span of the x axis with its name at the top right (the warm-up on the timelines): a `marker` dataset,
   so it is neither counted as data nor listed in the legend. */
function band(from, to, top, text, yAxisID) {
  return {type: "line", marker: true, mark: text, markAlign: "right", label: text,
    data: [{x: from, y: top}, {x: to, y: top}], fill: "origin", backgroundColor: "rgba(107,114,128,0.18)",
    borderColor: "#4b5563", borderWidth: 0, pointRadius: 0, yAxisID: yAxisID || "y"};
}
