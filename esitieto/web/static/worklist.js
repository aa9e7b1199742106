// Live worklist: when a case changes, fetch this page again and swap the table in place
// (no reload, no lost scroll position). Plain JavaScript, no library, no CDN.
(function () {
  "use strict";
  if (!window.EventSource) { return; }
  var source = new EventSource("/worklist/events");
  var first = true;
  source.addEventListener("changed", function () {
    if (first) { first = false; return; }  // the state the page was rendered with
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("worklist");
        var current = document.getElementById("worklist");
        if (fresh && current) { current.replaceWith(fresh); }
      });
  });
})();
