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
