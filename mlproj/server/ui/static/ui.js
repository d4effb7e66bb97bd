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
  document.addEventListener("DOMContentLoaded", function () {
    var log = document.getElementById("log");
    if (log) { follow(log); }
  });
})();
