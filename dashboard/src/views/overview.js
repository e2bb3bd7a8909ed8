// Overview: deliveries by status, attempts per minute (delivered vs failed), response-time percentiles,
// open circuit breakers and the oldest outstanding delivery.
import { api, query } from "../api.js";
import { lineChart, series } from "../charts.js";
import { badge, fill, h, ms, percent, table } from "../dom.js";

const RANGES = { hour: 3600, day: 86400 };

/** Cards for the outstanding counts of GET /v1/stats. */
export function statusCards(stats) {
  return h(
    "div",
    { class: "cards" },
    stats.outstanding.map((s) =>
      h(
        "a",
        { class: `card card-${s.status}`, href: "#/outstanding" },
        h("span", { class: "card-label" }, s.status.replace("_", " ")),
        h("span", { class: "card-value" }, `${s.count}${s.more ? "+" : ""}`),
      ),
    ),
  );
}

/** Cards for the totals of a range. */
export function totalCards(totals) {
  return h(
    "div",
    { class: "cards" },
    [
      ["delivered", totals.delivered],
      ["failed attempts", totals.retried + totals.failed],
      ["success rate", percent(totals.success_rate)],
      ["p50", ms(totals.p50_ms)],
      ["p90", ms(totals.p90_ms)],
      ["p99", ms(totals.p99_ms)],
    ].map(([label, value]) =>
      h("div", { class: "card" }, h("span", { class: "card-label" }, label), h("span", { class: "card-value" }, value)),
    ),
  );
}

/** A range picker (last hour / last day) calling `changed` with the seconds chosen. */
export function rangePicker(changed) {
  const select = h(
    "select",
    { id: "range" },
    h("option", { value: "hour" }, "Last hour"),
    h("option", { value: "day" }, "Last day"),
  );
  select.addEventListener("change", () => changed(RANGES[select.value]));
  return h("div", { class: "field inline" }, h("label", { for: "range" }, "Range"), select);
}

/** GET /v1/stats for the last `seconds`, by minute. */
export function loadStats(seconds, endpointId) {
  const since = new Date(Date.now() - seconds * 1000).toISOString();
  return api("GET", `/v1/stats${query({ since, bucket: 60, endpoint_id: endpointId })}`);
}

export async function overview() {
  let seconds = RANGES.hour;
  const cards = h("section", { "aria-label": "Deliveries by status" });
  const chart = h("div", { class: "chart", id: "overview-chart" });
  const totals = h("section", { "aria-label": "Attempts in range" });
  const side = h("section", { class: "side" });
  const element = h(
    "div",
    {},
    h("div", { class: "title-row" }, h("h1", {}, "Overview"), rangePicker((s) => ((seconds = s), refresh()))),
    cards,
    h("h2", {}, "Attempts per minute"),
    chart,
    totals,
    side,
  );
  async function refresh() {
    const [stats, endpoints] = await Promise.all([loadStats(seconds), api("GET", "/v1/endpoints?limit=250")]);
    fill(cards, statusCards(stats));
    fill(totals, totalCards(stats.totals));
    lineChart(
      chart,
      "Delivered vs failed attempts",
      [
        { label: "delivered", stroke: "#2e7d32" },
        { label: "failed", stroke: "#c62828" },
      ],
      series(stats, [(b) => (b ? b.delivered : 0), (b) => (b ? b.retried + b.failed : 0)]),
    );
    const open = endpoints.data.filter((e) => e.circuit && e.circuit.state !== "closed");
    const oldest = stats.oldest_outstanding;
    fill(
      side,
      h("h2", {}, "Open circuit breakers"),
      table(
        "Endpoints whose breaker is open",
        ["Endpoint", "State", "Failures", "Next probe", "Last error"],
        open.map((e) => [
          h("a", { href: `#/endpoints/${e.id}` }, e.url),
          badge(e.circuit.state),
          e.circuit.consecutive_failures,
          e.circuit.next_probe_at ? new Date(e.circuit.next_probe_at).toLocaleTimeString() : "—",
          e.circuit.last_error || "—",
        ]),
        "Every endpoint's breaker is closed.",
      ),
      h("h2", {}, "Oldest outstanding delivery"),
      oldest
        ? h(
            "p",
            {},
            h("a", { href: `#/deliveries/${oldest.delivery_id}` }, oldest.delivery_id),
            " ",
            badge(oldest.status),
            ` waiting ${age(oldest.age_secs)}`,
          )
        : h("p", { class: "empty" }, "Nothing is waiting."),
    );
  }
  return { element, refresh };
}

function age(secs) {
  if (secs < 120) return `${secs} s`;
  if (secs < 7200) return `${Math.round(secs / 60)} min`;
  if (secs < 172800) return `${Math.round(secs / 3600)} h`;
  return `${Math.round(secs / 86400)} days`;
}
