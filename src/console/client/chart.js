// Chart island: draws every `[data-chart]` element with uPlot from the JSON data block the server
// rendered beside it ({title, x: unix seconds[], series: [{label, values[]}]}). The instances are
// kept on `window.cmCharts` by id, so tests can read exactly the points drawn.
(() => {
  const palette = ["#2563eb", "#d97706", "#dc2626", "#059669", "#7c3aed", "#0891b2"];
  window.cmCharts = {};
  for (const el of document.querySelectorAll("[data-chart]")) {
    const id = el.getAttribute("data-chart");
    const block = document.getElementById(id);
    if (!block) continue;
    const spec = JSON.parse(block.textContent);
    const tz = el.getAttribute("data-tz") || "UTC";
    const opts = {
      title: spec.title,
      width: Math.max(320, el.clientWidth || 640),
      height: 240,
      tzDate: (ts) => (window.uPlot.tzDate ? window.uPlot.tzDate(new Date(ts * 1e3), tz) : new Date(ts * 1e3)),
      scales: { x: { time: true } },
      series: [{}, ...spec.series.map((s, i) => ({ label: s.label, stroke: palette[i % palette.length], width: 2 }))],
      axes: [{}, { size: 60 }],
    };
    const data = [spec.x, ...spec.series.map((s) => s.values)];
    window.cmCharts[id] = new window.uPlot(opts, data, el);
  }
})();
