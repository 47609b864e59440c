/* Tix web UI: copy buttons and the live chain picture. No framework, nothing from a CDN. */
(function () {
  "use strict";

  function copyFrom(id, button) {
    var field = document.getElementById(id);
    if (!field) { return; }
    var done = function () {
      button.classList.add("done");
      window.setTimeout(function () { button.classList.remove("done"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () {
        field.select(); document.execCommand("copy"); done();
      });
    } else {
      field.select(); document.execCommand("copy"); done();
    }
  }

  /* Poll a fragment URL and swap it in when it changed (roll-ups arriving from partners). */
  function poll(container) {
    var url = container.getAttribute("data-poll");
    var every = Math.max(1000, parseInt(container.getAttribute("data-every") || "3000", 10));
    var busy = false;
    function tick() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          var current = container.querySelector("svg");
          var probe = document.createElement("div");
          probe.innerHTML = html;
          var next = probe.querySelector("svg");
          if (!next) { return; }
          if (!current || current.getAttribute("data-version") !== next.getAttribute("data-version")) {
            container.innerHTML = html;
            container.classList.add("updated");
            window.setTimeout(function () { container.classList.remove("updated"); }, 1200);
          }
        })
        .catch(function () { /* the node is restarting; try again on the next tick */ })
        .then(function () { busy = false; });
    }
    window.setInterval(tick, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () { copyFrom(button.getAttribute("data-copy"), button); });
    });
    document.querySelectorAll("[data-poll]").forEach(poll);
  });
}());
