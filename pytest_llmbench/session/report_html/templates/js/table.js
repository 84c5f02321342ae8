/* Part 5: the table of every test — filter, sort, pages of rows, a link to each completion file. On a phone the
   numbers come first: the test's id stays at the left (fixed while the table scrolls sideways, report.css), its
   measurements right after it, its texts last. */
var MEASURED = data.columns.map(function (c) { return c[0]; }).concat(["tokens", "start"]);
var PHONE = window.matchMedia("(max-width: 600px)");
var TEXT_INDEXED = {category: true, model: true};
function columnOrder() {
  var run = multi ? ["run"] : [];
  return PHONE.matches ? ["id"].concat(MEASURED, run, ["outcome", "name", "category", "model"])
    : run.concat(["id", "name", "category", "model", "outcome"], MEASURED);
}
/* The header's cells in the order of the rows' (the file link stays last). */
function layOut() {
  var header = document.querySelector("#test-table thead tr"), file = header.lastElementChild;
  columnOrder().forEach(function (key) { header.insertBefore(header.querySelector('th[data-key="' + key + '"]'), file); });
}
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
  var keys = columnOrder();
  shown.forEach(function (r) {
    var tr = document.createElement("tr");
    tr.className = runs[r[0]].tests.outcome[r[1]];
    keys.forEach(function (key) {
      var v = cell(r[0], r[1], key), td = make("td", typeof v === "number" ? "num" : null, v === null ? "—" : v);
      if (key === "id" && multi) { td.style.boxShadow = "inset 4px 0 " + colour(r[0]); }  /* the run's colour */
      tr.appendChild(td);
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
  PHONE.addEventListener("change", function () { layOut(); renderTable(); });
  layOut();
  renderTable();
}
