// Draws every [data-plotly="ID"] element from the figure JSON in <script type="application/json" id="ID">.
(function () {
  "use strict";

  function draw(el) {
    var source = document.getElementById(el.getAttribute("data-plotly"));
    if (!source) {
      el.textContent = "Chart data is missing.";
      return;
    }
    if (!window.Plotly) {
      el.textContent = "The chart library did not load.";
      return;
    }
    var fig = JSON.parse(source.textContent);
    window.Plotly.newPlot(el, fig.data, fig.layout || {}, {responsive: true, displaylogo: false});
  }

  function drawAll() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-plotly]"), draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
