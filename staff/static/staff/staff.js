// Baeum staff workbench: a little behaviour on top of plain forms; every page works without it.
(function () {
  "use strict";

  // A form sent once stays sent: a second click while the first is on its way is ignored
  // (the services refuse a repeated transition anyway; this spares the error message).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (form.method.toLowerCase() !== "post") {
      return;
    }
    if (form.dataset.sent === "1") {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "1";
    form.querySelectorAll("button[type=submit]").forEach(function (button) {
      button.setAttribute("aria-disabled", "true");
      button.classList.add("sending");
    });
  });

  // An import's page (a registry's, a batch's results) follows it until it finishes,
  // then shows the result.
  var progress = document.querySelector("[data-progress-url]");
  if (progress) {
    var url = progress.getAttribute("data-progress-url");
    var poll = function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (job) {
          if (!job) { return; }
          progress.querySelectorAll("[data-field]").forEach(function (field) {
            var name = field.getAttribute("data-field");
            var value = name === "status" ? job.status_label : job[name];
            if (value !== undefined) {
              field.textContent = typeof value === "number" ? value.toLocaleString() : value;
            }
          });
          if (job.finished) {
            window.location.reload();
          } else {
            window.setTimeout(poll, 2000);
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    };
    window.setTimeout(poll, 1500);
  }
})();
