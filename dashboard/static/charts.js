// Draw the overview's charts with the Plotly bundle our server ships (no CDN).
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || !window.Plotly) return;
  var specs = JSON.parse(source.textContent);
  var config = { displayModeBar: false, responsive: true };
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var spec = specs[el.dataset.chart];
    if (!spec) return;
    window.Plotly.newPlot(el, spec.data, spec.layout, config).then(function () {
      el.dataset.rendered = "1";
    });
  });
})();
