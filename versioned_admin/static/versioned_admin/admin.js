// versioned_admin: optional niceties. Every page works without this file.
(function () {
  "use strict";

  // Focus the first field with an error, else the search box when it holds a query.
  var invalid = document.querySelector('[aria-invalid="true"]');
  if (invalid) {
    invalid.focus();
  }

  // "/" focuses the search box (unless typing in a field already).
  var search = document.querySelector("[data-va-search]");
  document.addEventListener("keydown", function (event) {
    var tag = (event.target && event.target.tagName) || "";
    if (event.key === "/" && search && !/^(INPUT|TEXTAREA|SELECT)$/.test(tag)) {
      event.preventDefault();
      search.focus();
      search.select();
    }
  });

  // "Add another" on inline editors: copy the hidden blank row with the next free index.
  Array.prototype.forEach.call(document.querySelectorAll("[data-va-add-row]"), function (button) {
    var name = button.getAttribute("data-va-add-row");
    var template = document.getElementById(name + "-template");
    var body = document.getElementById(name + "-rows");
    if (!template || !body) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      var next = parseInt(button.getAttribute("data-next"), 10) || 0;
      body.insertAdjacentHTML("beforeend", template.innerHTML.split("__index__").join(String(next)));
      button.setAttribute("data-next", String(next + 1));
      var field = body.lastElementChild && body.lastElementChild.querySelector("input:not([type=hidden]), select, textarea");
      if (field) {
        field.focus();
      }
    });
  });
})();
