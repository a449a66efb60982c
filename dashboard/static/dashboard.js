// Customer Brain dashboard: confirmation dialogs and import progress. Plain JS, no framework.
(function () {
  "use strict";

  // A form (or its submit button) with data-confirm asks first, in a real dialog.
  var dialog = document.getElementById("confirm-dialog");
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var submitter = event.submitter || null;
    var holder = submitter && submitter.dataset.confirm ? submitter : form;
    var text = holder.dataset ? holder.dataset.confirm : null;
    if (!text || form.dataset.confirmed === "1" || !dialog || !dialog.showModal) return;
    event.preventDefault();
    document.getElementById("confirm-title").textContent = holder.dataset.confirmTitle || "Are you sure?";
    document.getElementById("confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.onclose = function () {
      if (dialog.returnValue !== "ok") return;
      form.dataset.confirmed = "1";
      if (form.requestSubmit) form.requestSubmit(submitter || undefined); else form.submit();
    };
    dialog.showModal();
  });

  // Import progress: poll the job's status until it is done or failed.
  var job = document.getElementById("import-job");
  if (job && job.dataset.status === "running") {
    var url = job.dataset.statusUrl;
    var bar = job.querySelector(".progress-bar");
    var progress = job.querySelector(".progress");
    var set = function (id, value) { var el = document.getElementById(id); if (el) el.textContent = value; };
    var poll = function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error("status " + r.status); return r.json(); })
        .then(function (s) {
          var pct = s.total ? Math.round(100 * s.done / s.total) : (s.status === "done" ? 100 : 0);
          bar.style.width = pct + "%";
          progress.setAttribute("aria-valuenow", String(s.done));
          set("job-status", s.status); set("job-done", s.done); set("job-total", s.total);
          job.dataset.status = s.status;
          if (s.status === "done" && s.report) {
            set("r-accepted", s.report.accepted); set("r-duplicates", s.report.duplicates);
            set("r-rejected", s.report.rejected); set("r-processed", s.report.processed);
            document.getElementById("job-report").hidden = false;
          } else if (s.status === "failed") {
            var err = document.getElementById("job-error");
            err.textContent = s.error || "The import failed."; err.hidden = false;
          } else {
            window.setTimeout(poll, 400);
          }
        })
        .catch(function () { window.setTimeout(poll, 1500); });
    };
    poll();
  }
})();
