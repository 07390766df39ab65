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
})();
