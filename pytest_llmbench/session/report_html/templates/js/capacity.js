/* Part 4b: a capacity search (--llmbench-search): each probed level's attainment with its interval against the
   target, coloured by what the search took it for, and the levels in the order probed. */
var VERDICT_COLOURS = {true: "#16a34a", false: "#dc2626"};
function capacity() {
  var box = document.getElementById("capacity-charts");
  var searched = runs.filter(function (r) { return r.capacity; });
  if (!box || !searched.length) { return; }
  var sets = [], path = [], xs = [], target = searched[0].capacity.target;
  searched.forEach(function (run) {
    var points = run.capacity.points.filter(function (p) { return Number.isFinite(p.x); });
    var judged = points.filter(function (p) { return Number.isFinite(p.y); });
    judged.forEach(function (p) {
      xs.push(p.x);
      if (Number.isFinite(p.low) && Number.isFinite(p.high)) {
        sets.push({type: "line", marker: true, mark: "", label: "interval", data: [{x: p.x, y: p.low}, {x: p.x, y: p.high}],
          borderColor: VERDICT_COLOURS[p.passed], borderWidth: 2, pointRadius: 0});
      }
    });
    sets.push({type: "scatter", label: label(run, "attainment (pass green, fail red)"), data: judged, levelLabels: true,
      borderColor: "#374151", pointRadius: 5,
      pointBackgroundColor: judged.map(function (p) { return VERDICT_COLOURS[p.passed]; })});
    path.push({type: "line", label: label(run, "level probed"), data: points.map(function (p) { return {x: p.order, y: p.x, level: p.level}; }),
      borderColor: "#6b7280", levelLabels: true, pointRadius: 5,
      pointBackgroundColor: points.map(function (p) { return VERDICT_COLOURS[p.passed]; })});
  });
  if (target !== null && xs.length) {
    var lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
    sets.push({type: "line", marker: true, mark: "target " + (target * 100).toFixed(1) + "%", markAlign: "right",
      label: "target", data: [{x: lo, y: target}, {x: hi, y: target}], borderColor: "#b91c1c", borderDash: [6, 4],
      borderWidth: 1.5, pointRadius: 0});
  }
  var percent = {callback: function (v) { return (v * 100).toFixed(0) + "%"; }};
  draw(chartBox(box, "Attainment per level, with its interval"), {type: "scatter", data: {datasets: sets}, options: {
    scales: {x: {type: "linear", title: {display: true, text: searched[0].capacity.level_label}},
      y: {min: 0, max: 1, ticks: percent, title: {display: true, text: "requests meeting every objective"}}}}},
    "no level was judged");
  draw(chartBox(box, "The levels in the order probed"), {type: "line", data: {datasets: path}, options: {
    scales: {x: {type: "linear", ticks: {stepSize: 1}, title: {display: true, text: "probe"}},
      y: {beginAtZero: true, title: {display: true, text: searched[0].capacity.level_label}}}}}, "no level was probed");
}
