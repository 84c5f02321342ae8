/* Part 2: distributions — a histogram and an empirical CDF per metric, p50/p90/p99 marked; a sweep's levels one at
   a time on demand; the --llmbench-compare baseline beside the run; the token lengths asked for against those
   served. */
function distributionSeries() {
  var series = runs.map(function (run, ri) {
    return {label: run.label, colour: colour(ri), tests: run.tests, quantiles: run.quantiles,
      percentiles: run.percentiles, levels: run.level_percentiles || {}};
  });
  if (data.baseline) {
    var b = data.baseline;
    series.unshift({label: "baseline " + b.label, colour: BASELINE_COLOUR, tests: b.tests, quantiles: b.quantiles,
      percentiles: b.percentiles, levels: {}, baseline: true});
  }
  return series;
}
var SERIES = distributionSeries();
var MAX_OVERLAID = 3;  /* more histograms than this in one chart crowd it: one histogram per run, on shared axes */
var overlaid = SERIES.length > 1;
function seriesLabel(s, text) { return overlaid ? s.label + " · " + text : text; }
/* A column of the tests, only those of `level` when one is chosen (a sweep's level label), nulls left out. */
function levelValues(s, key, level) {
  var t = s.tests, values = t[key] || [];
  if (level === null) { return present(values); }
  if (!t.level) { return []; }
  return present(values.filter(function (v, i) { return t.texts[t.level[i]] === level; }));
}
function metricValues(s, key, level) {
  return level === null && s.quantiles[key] ? s.quantiles[key] : levelValues(s, key, level);
}
function cdfPoints(sorted) {
  var n = sorted.length, m = Math.min(n, 400), out = [];
  for (var i = 0; i < m; i++) {
    var k = m === 1 ? 0 : Math.round(i * (n - 1) / (m - 1));
    out.push({x: sorted[k], y: (k + 1) / n});
  }
  return out;
}
function markers(s, key, unit, top, level) {
  var sets = [], marks = level === null ? s.percentiles : s.levels[level] || {};
  ["p50", "p90", "p99"].forEach(function (mark) {
    var value = (marks[key] || {})[mark];
    if (value === null || value === undefined) { return; }
    sets.push({type: "line", marker: true, mark: mark, label: seriesLabel(s, mark + " " + value.toFixed(1) + " " + unit),
      data: [{x: value, y: 0}, {x: value, y: top}], borderColor: s.colour, borderWidth: 1.5,
      borderDash: MARK_DASH[mark], pointRadius: 0, pointHitRadius: 6});
  });
  return sets;
}
function distribution(box, entry, level) {
  var key = entry[0], title = entry[1], unit = entry[2], note = entry[3], counted = entry[4];
  var drawn = SERIES.filter(function (s) { return level === null || !s.baseline; });  /* levels are this run's */
  if (level !== null && drawn.some(function (s) { return s.quantiles[key]; })) {
    box.appendChild(make("p", "muted no-data", title + ": per token gap, kept pooled over the whole run only"));
    return;
  }
  var series = drawn.map(function (s) { return metricValues(s, key, level).slice().sort(function (a, b) { return a - b; }); });
  var all = [].concat.apply([], series);
  if (!all.length) { return; }
  var lo = Math.min.apply(null, series.map(function (v) { return v.length ? v[0] : Infinity; }));
  var hi = Math.max.apply(null, series.map(function (v) { return v.length ? v[v.length - 1] : -Infinity; }));
  /* a few far outliers would squeeze the rest into one bar: past 3x the 99th percentile's span, the bars stop at
     that percentile and the last one holds the tail (the axis says so; the CDF keeps the whole range) */
  var pooled = all.slice().sort(function (a, b) { return a - b; }), top = pooled[Math.floor(0.99 * (pooled.length - 1))];
  var clipped = pooled.length >= 20 && hi - lo > 3 * (top - lo) && top > lo ? top : null;
  var histHi = clipped === null ? hi : clipped;
  var bins = Math.max(10, Math.min(60, Math.round(Math.sqrt(all.length / drawn.length))));
  var width = (histHi - lo) / bins || 1;
  var hist = [], cdf = [], histTop = 0, own = [];
  series.forEach(function (values, si) {
    var s = drawn[si];
    if (!values.length) { return; }
    var counts = new Array(bins).fill(0);
    values.forEach(function (v) { counts[Math.min(bins - 1, Math.floor((v - lo) / width))] += 1; });
    var points = counts.map(function (c, b) { return {x: lo + (b + 0.5) * width, y: 100 * c / values.length}; });
    points.forEach(function (p) { histTop = Math.max(histTop, p.y); });
    hist.push({type: "bar", label: seriesLabel(s, title), data: points, backgroundColor: alpha(s.colour, overlaid ? 0.45 : 0.7),
      borderColor: s.colour, borderWidth: 1, barPercentage: 1, categoryPercentage: 1, grouped: false});
    own.push(s);
    cdf.push({type: "line", label: seriesLabel(s, "CDF"), data: cdfPoints(values), borderColor: s.colour,
      backgroundColor: s.colour, pointRadius: 0, borderWidth: 2, stepped: true, borderDash: s.baseline ? [5, 3] : []});
  });
  drawn.forEach(function (s) {
    hist = hist.concat(markers(s, key, unit, histTop, level));
    cdf = cdf.concat(markers(s, key, unit, 1, level));
  });
  var xAxis = {type: "linear", min: lo, max: hi + (hi === lo ? 1 : 0), ticks: {includeBounds: false},
    title: {display: true, text: title + ", " + unit + note}};
  var histAxis = Object.assign({}, xAxis, {max: histHi + (histHi === lo ? 1 : 0), title: {display: true,
    text: title + ", " + unit + note + (clipped === null ? "" : "; the last bar holds every value above " +
      clipped.toFixed(1) + " " + unit + " (max " + hi.toFixed(1) + ")")}});
  var suffix = level === null ? "" : " at " + level;
  var histograms = own.length > MAX_OVERLAID ? own.map(function (s, k) {
    return {title: title + " — histogram, " + s.label + suffix, sets: [hist[k]].concat(markers(s, key, unit, histTop, level))};
  }) : [{title: title + " — histogram" + suffix, sets: hist}];
  var yAxis = {title: {display: true, text: "% of " + counted}, beginAtZero: true};
  if (histograms.length > 1) { yAxis.max = Math.ceil(histTop); }  /* one scale for the runs' histograms */
  histograms.forEach(function (h) {
    draw(chartBox(box, h.title), {type: "bar", data: {datasets: h.sets}, options: {scales: {x: histAxis, y: yAxis}}});
  });
  draw(chartBox(box, title + " — CDF" + suffix), {type: "line", data: {datasets: cdf}, options: {
    scales: {x: xAxis, y: {min: 0, max: 1, title: {display: true, text: "share at or below"}}}}});
}
/* Generated tests: each request's length asked for (x) against what the server's usage counted (y). */
function requested(box, entry, level) {
  var achievedKey = entry[0], askedKey = entry[1], title = entry[2], xs = [];
  var sets = SERIES.filter(function (s) { return s.tests[askedKey] && (level === null || !s.baseline); }).map(function (s) {
    var t = s.tests, points = [];
    t[askedKey].forEach(function (asked, i) {
      var got = t[achievedKey][i];
      if (asked === null || got === null || (level !== null && t.texts[t.level[i]] !== level)) { return; }
      points.push({x: asked, y: got, id: t.id[i]});
      xs.push(asked, got);
    });
    return {type: "scatter", label: seriesLabel(s, "requests"), data: points, borderColor: s.colour,
      backgroundColor: alpha(s.colour, 0.6), pointRadius: 3};
  });
  if (!xs.length) { return; }
  var lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
  sets.push({type: "line", marker: true, mark: "asked = served", markAlign: "right", label: "asked = served",
    data: [{x: lo, y: lo}, {x: hi, y: hi}], borderColor: "#6b7280", borderDash: [4, 3], borderWidth: 1, pointRadius: 0});
  var name = title.replace(" (server usage)", "");
  draw(chartBox(box, name + ": asked for against served" + (level === null ? "" : " at " + level)), {type: "scatter",
    data: {datasets: sets}, options: {scales: {x: {type: "linear", title: {display: true, text: name + " asked for (the workload)"}},
      y: {title: {display: true, text: name + " served (the server's usage)"}}},
      plugins: {tooltip: {callbacks: {label: function (ctx) {
        return ctx.raw.id + ": asked " + ctx.raw.x + ", served " + ctx.raw.y;
      }}}}}});
}
function distributions() {
  var box = document.getElementById("distribution-charts"), select = document.getElementById("distribution-level");
  var level = select && select.value ? select.value : null;
  clearCharts(box);
  data.distributions.forEach(function (entry) { distribution(box, entry, level); });
  data.requested.forEach(function (entry) { requested(box, entry, level); });
}
