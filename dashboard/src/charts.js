// Charts, drawn by uPlot (pinned in package.json). A chart is redrawn in place when its data changes.
import uPlot from "uplot";

const charts = new WeakMap();

/** Time buckets from `stats` (GET /v1/stats), zero-filled so gaps read as zero rather than a line. */
export function series(stats, pick) {
  const step = stats.bucket_secs;
  const start = Math.floor(Date.parse(stats.since) / 1000);
  const end = Math.floor(Date.parse(stats.until) / 1000);
  const byStart = new Map(stats.buckets.map((b) => [Math.floor(Date.parse(b.start) / 1000), b]));
  const xs = [];
  const ys = pick.map(() => []);
  for (let t = start; t < end; t += step) {
    xs.push(t);
    const bucket = byStart.get(t);
    pick.forEach((f, i) => ys[i].push(bucket ? f(bucket) : f(null)));
  }
  return [xs, ...ys];
}

/** Draw (or redraw) a line chart in `container`. `lines`: [{label, stroke}], `data`: [xs, ...ys]. */
export function lineChart(container, title, lines, data, unit = "") {
  const width = Math.max(280, (container.clientWidth || 660) - 20);
  const existing = charts.get(container);
  if (existing && existing.width === width && existing.series.length === lines.length + 1) {
    existing.setData(data);
    return existing;
  }
  existing?.destroy();
  container.replaceChildren();
  const chart = new uPlot(
    {
      title,
      width,
      height: 220,
      series: [
        {},
        ...lines.map((line) => ({
          label: line.label,
          stroke: line.stroke,
          width: 2,
          spanGaps: false,
          points: { show: false },
          value: (_, v) => (v === null || v === undefined ? "—" : `${v}${unit}`),
        })),
      ],
      axes: [{}, { values: (_, ticks) => ticks.map((v) => `${v}${unit}`) }],
      scales: { y: { range: (_, min, max) => [0, Math.max(1, max)] } },
    },
    data,
    container,
  );
  charts.set(container, chart);
  return chart;
}
