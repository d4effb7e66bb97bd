// mlproj's web UI: the few things htmx does not do. Reading works without this file.
(function () {
  "use strict";
  function follow(log) {
    var box = document.getElementById("follow");
    if (box && box.checked) { log.scrollTop = log.scrollHeight; }
  }
  function highlight() {
    var input = document.getElementById("log-search");
    var log = document.getElementById("log");
    if (!input || !log) { return; }
    var wanted = input.value.toLowerCase();
    if (wanted === "" && !log.querySelector("span.line.hit, span.line[hidden]")) { return; }
    var count = 0;
    log.querySelectorAll("span.line").forEach(function (line) {
      var hit = wanted !== "" && line.textContent.toLowerCase().indexOf(wanted) !== -1;
      line.classList.toggle("hit", hit);
      if (hit) { count += 1; }
      line.hidden = wanted !== "" && document.getElementById("only-hits").checked && !hit;
    });
    var shown = document.getElementById("hits");
    if (shown) { shown.textContent = wanted === "" ? "" : count + " lines match"; }
  }
  document.addEventListener("htmx:sseMessage", function (event) {
    var log = document.getElementById("log");
    if (log) { highlight(); follow(log); }
    // Should the stream be opened again, it goes on from what was shown, not from the page's start.
    var id = event.detail && event.detail.lastEventId;
    var source = document.querySelector("[sse-connect]");
    if (id && source) {
      source.setAttribute("sse-connect", source.getAttribute("sse-connect").replace(/offset=\d+/, "offset=" + id));
    }
  });
  document.addEventListener("input", function (event) {
    if (event.target && (event.target.id === "log-search" || event.target.id === "only-hits")) { highlight(); }
  });
  // A step's node or row opens its panel (its log and outputs) below the DAG; its link still goes to
  // the step's own page when opened in a new tab, or without JavaScript.
  document.addEventListener("click", function (event) {
    var link = event.target && event.target.closest ? event.target.closest("a[data-panel]") : null;
    var panel = document.getElementById("step-panel");
    if (!link || !panel || !window.htmx || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    event.preventDefault();
    window.htmx.ajax("GET", link.getAttribute("data-panel"), { target: "#step-panel", swap: "innerHTML" }).then(function () {
      var title = document.getElementById("panel-title");
      if (title) { title.focus(); }
    });
  });
  // The steps table is replaced every 2 s while a pipeline runs: a loop folded or unfolded by hand
  // stays so, and a step's panel keeps the focus and its log's end in view.
  var folds = {};
  document.addEventListener("toggle", function (event) {
    var fold = event.target;
    if (fold && fold.hasAttribute && fold.hasAttribute("data-fold")) { folds[fold.id] = fold.open; }
  }, true);
  var focused = null;
  document.addEventListener("htmx:beforeSwap", function () {
    focused = document.activeElement ? document.activeElement.id : null;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    document.querySelectorAll("details[data-fold]").forEach(function (fold) {
      if (Object.prototype.hasOwnProperty.call(folds, fold.id) && fold.open !== folds[fold.id]) { fold.open = folds[fold.id]; }
    });
    var target = event.detail && event.detail.target;
    if (target && target.id === "step-panel") {
      var log = target.querySelector("pre.panel-log");
      if (log) { log.scrollTop = log.scrollHeight; }
      if (focused === "panel-title") {
        var title = document.getElementById("panel-title");
        if (title) { title.focus(); }
      }
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    var log = document.getElementById("log");
    if (log) { follow(log); }
  });
})();
