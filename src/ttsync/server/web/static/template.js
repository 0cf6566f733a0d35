// ttsync web UI: the data template form's live audience-name example and "Add a row" for the mapping.
// Written here (no library). The server checks the same rules when the form is saved, and renders the
// example itself for a page without JavaScript.
(function () {
  "use strict";
  var MAX = 70, CUT = 67, FIELDS = ["campaign", "group", "date"];
  var input = document.getElementById("t-audience_name_template");
  var example = document.getElementById("name-example");
  var value = document.getElementById("name-example-value");
  var note = document.getElementById("name-example-note");
  if (input && example && value && note) {
    var render = function () {
      var template = input.value;
      var unknown = [];
      var re = /\{([^{}]*)\}/g, m;
      while ((m = re.exec(template)) !== null) {
        if (FIELDS.indexOf(m[1]) < 0 && unknown.indexOf(m[1]) < 0) { unknown.push(m[1]); }
      }
      note.className = "small warn";
      if (!template) { value.textContent = "—"; note.textContent = ""; return; }
      if (unknown.length) {
        unknown.sort();
        value.textContent = "—";
        note.className = "small error";
        note.textContent = "audience_name_template may only use {campaign}, {group} and {date}; remove " +
          unknown.map(function (u) { return "{" + u + "}"; }).join(", ");
        return;
      }
      var name = template.replace(/\{(campaign|group|date)\}/g, function (_, field) {
        return example.getAttribute("data-" + field);
      });
      value.textContent = name;
      note.textContent = name.length <= MAX ? "" :
        "audience name is " + name.length + " characters; TikTok keeps at most " + MAX +
        " and will show it as '" + name.slice(0, CUT) + "...': shorten it to keep it recognizable";
    };
    input.addEventListener("input", render);
    render();
  }
  var add = document.getElementById("add-row");
  var rows = document.getElementById("mapping-rows");
  if (add && rows) {
    add.hidden = false;
    add.addEventListener("click", function () {
      var last = rows.lastElementChild;
      var copy = last.cloneNode(true);
      var index = rows.children.length;
      copy.setAttribute("data-row", String(index));
      copy.querySelectorAll("input").forEach(function (field) {
        field.value = "";
        field.removeAttribute("aria-invalid");
        field.removeAttribute("aria-describedby");
        field.id = field.id.replace(/-\d+$/, "-" + index);
        field.setAttribute("aria-label", field.getAttribute("aria-label").replace(/\d+$/, String(index + 1)));
      });
      copy.querySelectorAll(".error").forEach(function (p) { p.remove(); });
      rows.appendChild(copy);
      copy.querySelector("input").focus();
    });
  }
})();
