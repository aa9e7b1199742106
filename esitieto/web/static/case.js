// Copy the note for the patient record in one click (plain JavaScript, no library).
(function () {
  "use strict";
  var button = document.getElementById("copy-note");
  var note = document.getElementById("note");
  if (!button || !note || !navigator.clipboard) { return; }
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(note.textContent).then(function () {
      button.textContent = button.getAttribute("data-copied");
    });
  });
})();

// A click (or Enter) on a transcript segment plays that moment of the recording.
(function () {
  "use strict";
  function play(li) {
    var audio = document.getElementById(li.getAttribute("data-audio"));
    if (!audio) { return; }
    audio.currentTime = parseFloat(li.getAttribute("data-start")) || 0;
    audio.play();
  }
  document.querySelectorAll("li.segment").forEach(function (li) {
    li.addEventListener("click", function () { play(li); });
    li.addEventListener("keydown", function (e) { if (e.key === "Enter") { play(li); } });
  });
})();
