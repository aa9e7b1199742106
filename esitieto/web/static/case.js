// Copy the note for the patient record in one click (plain JavaScript, no library).
// The Clipboard API needs a secure page (https or localhost); on a plain-http intranet the
// older copy command still works, and if neither does the note is selected for Ctrl+C.
(function () {
  "use strict";
  var button = document.getElementById("copy-note");
  var note = document.getElementById("note");
  if (!button || !note) { return; }
  function selectNote() {
    var range = document.createRange();
    range.selectNodeContents(note);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  function done(ok) {
    button.textContent = button.getAttribute(ok ? "data-copied" : "data-copy-failed");
  }
  function legacyCopy() {
    selectNote();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    done(ok);
  }
  button.addEventListener("click", function () {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(note.textContent).then(function () { done(true); }, legacyCopy);
    } else {
      legacyCopy();
    }
  });
})();

// A click, Enter or Space on a transcript segment plays that moment of the recording.
(function () {
  "use strict";
  function play(li) {
    var audio = document.getElementById(li.getAttribute("data-audio"));
    if (!audio) { return; }
    audio.currentTime = parseFloat(li.getAttribute("data-start")) || 0;
    var started = audio.play();
    if (started && started.catch) { started.catch(function () {}); }
  }
  document.querySelectorAll("li.segment").forEach(function (li) {
    li.addEventListener("click", function () { play(li); });
    li.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); play(li); }
    });
  });
})();
