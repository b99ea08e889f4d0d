// The board's charts: turnaround percentiles per priority and SLA compliance per facility,
// from /api/stats/tat (Chart.js, served from the npm package; no CDN).
(function () {
  "use strict";
  const charts = {};
  const colours = { p50: "#5acce6", p90: "#e6b93c", p95: "#ff7b7b", sla: "#5acce6" };

  function draw(id, config) {
    if (charts[id]) charts[id].destroy();
    charts[id] = new Chart(document.getElementById(id), config);
  }

  function options(title, unit, max) {
    return {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { title: { display: true, text: title, color: "#e6e9f2" }, legend: { labels: { color: "#9aa3bd" } } },
      scales: {
        x: { ticks: { color: "#9aa3bd" }, grid: { color: "#26304d" } },
        y: { beginAtZero: true, max: max, title: { display: true, text: unit, color: "#9aa3bd" }, ticks: { color: "#9aa3bd" }, grid: { color: "#26304d" } },
      },
    };
  }

  async function load() {
    const form = document.getElementById("stats-form");
    const query = new URLSearchParams();
    if (form.facility.value) query.set("facility", form.facility.value);
    query.set("days", form.days.value);
    const response = await fetch("/api/stats/tat?" + query.toString(), { credentials: "same-origin" });
    const summary = document.getElementById("stats-summary");
    if (!response.ok) { summary.textContent = "Statistics unavailable (" + response.status + ")"; return; }
    const stats = await response.json();
    const reads = stats.tat_minutes.reduce((n, t) => n + t.reads, 0);
    const late = stats.sla.reduce((n, f) => n + f.open_breached, 0);
    summary.textContent = reads + " read(s) completed in the last " + stats.days + " day(s)" +
      (late ? "; " + late + " open past their deadline, counted as missed." : ".");
    draw("tat-chart", {
      type: "bar",
      data: {
        labels: stats.tat_minutes.map((t) => t.priority),
        datasets: ["p50", "p90", "p95"].map((p) => ({
          label: p.toUpperCase(), backgroundColor: colours[p], data: stats.tat_minutes.map((t) => t[p]),
        })),
      },
      options: options("Turnaround per priority", "minutes"),
    });
    draw("sla-chart", {
      type: "bar",
      data: {
        labels: stats.sla.map((f) => f.facility),
        datasets: [{ label: "SLA met (%)", backgroundColor: colours.sla, data: stats.sla.map((f) => Math.round(f.compliance * 1000) / 10) }],
      },
      options: options("SLA compliance per facility", "% of reads by the deadline", 100),
    });
    document.body.dataset.chartsReady = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    const form = document.getElementById("stats-form");
    form.addEventListener("change", load);
    if (typeof Chart === "undefined") {
      document.getElementById("stats-summary").textContent = "Chart.js is not installed (make install fetches it).";
      return;
    }
    load();
  });
})();
