// Outstanding deliveries (seed 000's audit record: attempts, next retry) with Cancel and Retry, and one
// delivery: its payload, the headers it is sent with, and every attempt.
import { api, query } from "../api.js";
import { badge, field, fill, h, ms, notice, table, when } from "../dom.js";
import { failingNote, pager, statusFilter } from "./endpoints.js";

const OUTSTANDING = ["retrying", "pending", "in_progress", "failed"];

/** Cancel and Retry buttons for a delivery, as its status allows; `done` runs after a success. */
export function actions(d, done) {
  const run = (label, verb) => async () => {
    try {
      await api("POST", `/v1/deliveries/${encodeURIComponent(d.id)}/${verb}`);
      notice(`${d.id}: ${label}.`);
      await done();
    } catch (err) {
      notice(`${d.id}: ${err.message}`, "error");
    }
  };
  const buttons = [];
  if (["pending", "retrying"].includes(d.status))
    buttons.push(
      h("button", { type: "button", class: "danger", onclick: run("cancelled", "cancel"), "aria-label": `Cancel ${d.id}` }, "Cancel"),
    );
  if (["retrying", "failed", "cancelled", "delivered"].includes(d.status))
    buttons.push(h("button", { type: "button", onclick: run("queued again", "retry"), "aria-label": `Retry ${d.id}` }, "Retry"));
  return h("div", { class: "actions" }, buttons);
}

/** Bulk retry: every failed delivery of one endpoint created since a time gets a fresh retry cycle. */
export function bulkRetry(endpoints, done) {
  const endpoint = h(
    "select",
    { required: true },
    endpoints.map((e) => h("option", { value: e.id }, e.description ? `${e.description} (${e.url})` : e.url)),
  );
  const since = h("input", { type: "datetime-local", required: true });
  const form = h(
    "form",
    { class: "panel", "aria-label": "Retry failed deliveries since a time" },
    h("h2", {}, "Retry failed deliveries"),
    field("Endpoint", endpoint),
    field("Created since", since),
    h("button", { type: "submit" }, "Retry failed deliveries"),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const iso = new Date(since.value).toISOString();
      const path = `/v1/endpoints/${encodeURIComponent(endpoint.value)}/recover${query({ since: iso })}`;
      const answer = await api("POST", path);
      notice(`${answer.recovered} failed deliveries queued again.`);
      await done();
    } catch (err) {
      notice(err.message, "error");
    }
  });
  return form;
}

export async function outstanding() {
  let status = "retrying";
  let cursor = null;
  const list = h("section", { "aria-label": "Outstanding deliveries" });
  const endpoints = await api("GET", "/v1/endpoints?limit=250");
  const element = h(
    "div",
    {},
    h("h1", {}, "Outstanding deliveries"),
    h("p", {}, "Deliveries not yet done, and the dead letters (failed), with their attempts and next retry."),
    statusFilter("outstanding-status", (s) => ((status = s), (cursor = null), refresh()), OUTSTANDING),
    list,
    endpoints.data.length ? bulkRetry(endpoints.data, () => refresh()) : null,
  );
  async function refresh() {
    const [page, endpoints] = await Promise.all([
      api("GET", `/v1/deliveries${query({ status, limit: 50, cursor })}`),
      api("GET", "/v1/endpoints?limit=250"),
    ]);
    const byId = new Map(endpoints.data.map((e) => [e.id, e]));
    const failing = new Set();
    const rows = page.data.map((d) => {
      const ep = byId.get(d.endpoint_id);
      if (failingNote(ep)) failing.add(ep);
      return [
        h("a", { href: `#/deliveries/${d.id}` }, d.id),
        ep ? h("a", { href: `#/endpoints/${ep.id}/log` }, ep.url) : d.url,
        badge(d.status),
        d.attempt_count,
        when(d.next_attempt_at),
        d.last_status_code ?? "—",
        d.last_error || "—",
        when(d.created_at),
        actions(d, refresh),
      ];
    });
    fill(
      list,
      [...failing].map(failingNote),
      table(
        "Outstanding deliveries",
        ["Delivery", "Endpoint", "Status", "Attempts", "Next retry", "Last code", "Last error", "Created", "Actions"],
        rows,
        `No ${status.replace("_", " ")} deliveries.`,
      ),
      pager(page, cursor, (c) => ((cursor = c), refresh())),
    );
  }
  return { element, refresh };
}

/** The headers Herald sends with each attempt of `d` (signature and timestamp change per attempt). */
function sentHeaders(d, endpoint) {
  const rows = [
    ["content-type", "application/json"],
    ["webhook-id", d.event_id],
    ["webhook-timestamp", "the attempt's time, in seconds"],
    ["webhook-signature", "v1,… (HMAC-SHA256 with the endpoint's secret; unsigned without one)"],
    ["x-correlation-id", d.correlation_id],
  ];
  for (const [name, value] of Object.entries(endpoint?.headers || {})) rows.push([name, value]);
  return table("Headers sent", ["Header", "Value"], rows.map(([n, v]) => [h("code", {}, n), v]));
}

export async function deliveryDetail(id) {
  const top = h("div", {});
  const attempts = h("section", { "aria-label": "Attempts" });
  const payload = h("section", { "aria-label": "Payload" });
  const element = h("div", {}, top, h("h2", {}, "Attempts"), attempts, payload);
  let drawnPayload = false;
  async function refresh() {
    const d = await api("GET", `/v1/deliveries/${encodeURIComponent(id)}`);
    fill(
      top,
      h("h1", {}, "Delivery ", h("code", {}, d.id)),
      h(
        "dl",
        { class: "facts" },
        [
          ["Status", badge(d.status)],
          ["URL", d.url],
          ["Endpoint", d.endpoint_id ? h("a", { href: `#/endpoints/${d.endpoint_id}/log` }, d.endpoint_id) : "direct"],
          ["Event", d.endpoint_id ? h("a", { href: `#/events/${d.event_id}` }, d.event_id) : d.event_id],
          ["Attempts", d.attempt_count],
          ["Next retry", when(d.next_attempt_at)],
          ["Correlation id", h("a", { href: `#/search/${encodeURIComponent(d.correlation_id)}` }, d.correlation_id)],
          ["Reference id", d.reference_id || "—"],
          ["Created", when(d.created_at)],
          ["Updated", when(d.updated_at)],
        ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
      actions(d, refresh),
    );
    fill(
      attempts,
      table(
        "Attempts, oldest first",
        ["#", "Time", "Status code", "Response time", "Error", "Response body"],
        d.attempts.map((a) => [
          a.number,
          when(a.started_at),
          a.status_code ?? "—",
          ms(a.duration_ms),
          a.error || "—",
          a.response_body ? h("pre", { class: "body" }, a.response_body) : "—",
        ]),
        "No attempt yet.",
      ),
    );
    if (!drawnPayload) {
      drawnPayload = true;
      const [event, endpoint] = d.endpoint_id
        ? await Promise.all([
            api("GET", `/v1/events/${encodeURIComponent(d.event_id)}`),
            api("GET", `/v1/endpoints/${encodeURIComponent(d.endpoint_id)}`).catch(() => null),
          ])
        : [null, null];
      fill(
        payload,
        h("h2", {}, "Headers sent"),
        sentHeaders(d, endpoint),
        h("h2", {}, "Payload"),
        event
          ? h("div", {}, h("p", {}, "Event type ", h("code", {}, event.event_type)), h("pre", { class: "payload" }, JSON.stringify(event.payload, null, 2)))
          : h("p", { class: "empty" }, "A direct delivery: its payload is sent as given."),
      );
    }
  }
  return { element, refresh };
}
