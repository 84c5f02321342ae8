/* Part 6: draws every part, timing each (window.llmbenchTimings, for benchmarks/report_html.py), and prepares the
   page for printing. */
var timings = {start: started, parse: performance.now() - started};
window.llmbenchTimings = timings;
[distributions, timeline, throughput, sweep, capacity, pareto, breakdown, hardware, server, table].forEach(function (part) {
  var t0 = performance.now();
  part();
  timings[part.name] = performance.now() - t0;
});
document.getElementById("timeline-colour").addEventListener("change", timeline);
var levelChoice = document.getElementById("distribution-level");
if (levelChoice) { levelChoice.addEventListener("change", distributions); }
/* Printing: every folded part (options, run cards, failure groups) open, charts redrawn for the page's width. */
function forPrint() {
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  charts.forEach(function (c) { c.resize(); });
}
window.addEventListener("beforeprint", forPrint);
window.matchMedia("print").addEventListener("change", function (m) { if (m.matches) { forPrint(); } });
window.llmbenchDrawnMs = performance.now() - started;
window.llmbenchReady = true;
