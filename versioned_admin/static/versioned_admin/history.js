// versioned_admin history pages: optional niceties. Every page works without this file.
(function () {
  "use strict";
  // Remember the viewer's time zone so exact times show in it (the server falls back to UTC).
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("va_tz=" + zone) === -1) {
      document.cookie = "va_tz=" + zone + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) { /* no Intl: UTC it is */ }
  // Compare form: keep "from" older than "to" by disabling impossible picks.
  var form = document.querySelector(".va-compare");
  if (!form) { return; }
  function sync() {
    var to = form.querySelector('input[name="to"]:checked');
    var from = form.querySelector('input[name="from"]:checked');
    var toN = to ? parseInt(to.value, 10) : Infinity;
    var fromN = from ? parseInt(from.value, 10) : 0;
    form.querySelectorAll('input[name="from"]').forEach(function (r) { r.disabled = parseInt(r.value, 10) >= toN; });
    form.querySelectorAll('input[name="to"]').forEach(function (r) { r.disabled = parseInt(r.value, 10) <= fromN; });
  }
  form.addEventListener("change", sync);
  sync();
})();
