// Finding things: events, deliveries and jobs by id; deliveries by correlation id or reference id; the
// jobs list with status and progress.
import { api, query } from "../api.js";
import { badge, field, fill, h, table, when } from "../dom.js";
import { pager, statusFilter } from "./endpoints.js";

function deliveryRows(deliveries) {
  return deliveries.map((d) => [
    h("a", { href: `#/deliveries/${d.id}` }, d.id),
    d.url,
    badge(d.status),
    d.attempt_count,
    d.last_status_code ?? "—",
    when(d.created_at),
  ]);
}

const DELIVERY_HEADERS = ["Delivery", "URL", "Status", "Attempts", "Last code", "Created"];

export async function search(initial) {
  const input = h("input", { type: "search", value: initial, placeholder: "evt_…, dlv_…, job_…, a correlation or reference id" });
  const results = h("section", { "aria-label": "Results", "aria-live": "polite" });
  const form = h(
    "form",
    { role: "search", class: "search" },
    field("Id, correlation id or reference id", input),
    h("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const value = input.value.trim();
    const direct = { evt_: "events", dlv_: "deliveries", job_: "jobs" };
    const kind = Object.keys(direct).find((prefix) => value.startsWith(prefix));
    location.hash = kind ? `#/${direct[kind]}/${value}` : `#/search/${encodeURIComponent(value)}`;
  });
  const element = h("div", {}, h("h1", {}, "Search"), form, results);
  async function refresh() {
    if (!initial) return;
    const [byCorrelation, byReference] = await Promise.all([
      api("GET", `/v1/deliveries${query({ correlation_id: initial, limit: 50 })}`),
      api("GET", `/v1/deliveries${query({ reference_id: initial, limit: 50 })}`),
    ]);
    fill(
      results,
      h("h2", {}, "Deliveries with this correlation id"),
      table("By correlation id", DELIVERY_HEADERS, deliveryRows(byCorrelation.data), "None."),
      h("h2", {}, "Deliveries with this reference id"),
      table("By reference id", DELIVERY_HEADERS, deliveryRows(byReference.data), "None."),
    );
  }
  return { element, refresh };
}

export async function eventDetail(id) {
  const event = await api("GET", `/v1/events/${encodeURIComponent(id)}`);
  const list = h("section", { "aria-label": "Deliveries of the event" });
  const element = h(
    "div",
    {},
    h("h1", {}, "Event ", h("code", {}, event.id)),
    h(
      "dl",
      { class: "facts" },
      [
        ["Type", event.event_type],
        ["Created", when(event.created_at)],
        ["Correlation id", event.correlation_id],
        ["Idempotency key", event.idempotency_key || "—"],
      ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    ),
    h("h2", {}, "Payload"),
    h("pre", { class: "payload" }, JSON.stringify(event.payload, null, 2)),
    h("h2", {}, "Deliveries"),
    list,
  );
  async function refresh() {
    const page = await api("GET", `/v1/deliveries${query({ event_id: id, limit: 250 })}`);
    fill(list, table("Deliveries of the event", DELIVERY_HEADERS, deliveryRows(page.data), "No deliveries."));
  }
  return { element, refresh };
}

function progressText(progress) {
  if (progress === null || progress === undefined) return "—";
  return typeof progress === "object" ? JSON.stringify(progress) : String(progress);
}

export async function jobList() {
  let status = "";
  let cursor = null;
  const list = h("section", { "aria-label": "Jobs" });
  const element = h(
    "div",
    {},
    h("h1", {}, "Jobs"),
    statusFilter("job-status", (s) => ((status = s), (cursor = null), refresh()), [
      "",
      "accepted",
      "running",
      "succeeded",
      "failed",
      "cancelled",
    ]),
    list,
  );
  async function refresh() {
    const page = await api("GET", `/v1/jobs${query({ status, limit: 50, cursor })}`);
    fill(
      list,
      table(
        "Jobs, newest first",
        ["Job", "Route", "Status", "Progress", "Correlation id"],
        page.data.map((j) => [
          h("a", { href: `#/jobs/${j.id}` }, j.id),
          j.route,
          badge(j.status),
          progressText(j.progress),
          j.correlation_id,
        ]),
        "No jobs.",
      ),
      pager(page, cursor, (c) => ((cursor = c), refresh())),
    );
  }
  return { element, refresh };
}

export async function jobDetail(id) {
  const body = h("div", {});
  async function refresh() {
    const job = await api("GET", `/v1/jobs/${encodeURIComponent(id)}`);
    fill(
      body,
      h("h1", {}, "Job ", h("code", {}, job.id)),
      h(
        "dl",
        { class: "facts" },
        [
          ["Route", job.route],
          ["Status", badge(job.status)],
          ["Progress", progressText(job.progress)],
          ["Correlation id", h("a", { href: `#/search/${encodeURIComponent(job.correlation_id)}` }, job.correlation_id)],
        ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
      job.result !== undefined && job.result !== null
        ? [h("h2", {}, "Result"), h("pre", { class: "payload" }, JSON.stringify(job.result, null, 2))]
        : null,
      job.result_indirect ? [h("h2", {}, "Result (offloaded)"), h("p", {}, h("code", {}, job.result_indirect.url || ""))] : null,
      job.error ? [h("h2", {}, "Error"), h("pre", { class: "payload" }, JSON.stringify(job.error, null, 2))] : null,
    );
  }
  return { element: body, refresh };
}
