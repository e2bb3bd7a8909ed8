// Endpoints: the list and a form to add one; per endpoint its health (success rate, response times),
// its Delivery Log (every attempt) and its settings (edit, disable/enable, secret, bulk retry).
import { api, query } from "../api.js";
import { lineChart, series } from "../charts.js";
import { badge, field, fill, h, ms, notice, table, when } from "../dom.js";
import { bulkRetry } from "./deliveries.js";
import { loadStats, rangePicker, totalCards } from "./overview.js";

const STATUSES = ["", "pending", "in_progress", "retrying", "delivered", "failed", "cancelled"];

/** The status filter select shared by delivery lists. */
export function statusFilter(id, changed, statuses = STATUSES) {
  const select = h(
    "select",
    { id },
    statuses.map((s) => h("option", { value: s }, s ? s.replace("_", " ") : "any status")),
  );
  select.addEventListener("change", () => changed(select.value));
  return h("div", { class: "field inline" }, h("label", { for: id }, "Status"), select);
}

function circuitBadge(e) {
  if (e.disabled) return badge("disabled");
  return badge(e.circuit?.state || "closed");
}

/** A note that an endpoint keeps failing and its owner should be contacted, when it does. */
export function failingNote(e) {
  if (!e || e.disabled || !e.circuit || e.circuit.state === "closed") return null;
  return h(
    "p",
    { class: "notice notice-error", role: "note" },
    `This endpoint keeps failing (${e.circuit.consecutive_failures} failures in a row, last: ${
      e.circuit.last_error || "unknown"
    }). Deliveries wait for its next probe; contact the receiver's owner.`,
  );
}

function newEndpointForm(created) {
  const url = h("input", { type: "url", required: true, placeholder: "https://example.com/webhooks" });
  const types = h("input", { type: "text", value: "*", required: true });
  const description = h("input", { type: "text" });
  const form = h(
    "form",
    { class: "panel", "aria-label": "New endpoint" },
    h("h2", {}, "New endpoint"),
    field("URL", url),
    field("Event types", types, "Comma-separated: *, an exact type, or prefix.*"),
    field("Description", description),
    h("button", { type: "submit" }, "Create endpoint"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const ep = await api("POST", "/v1/endpoints", {
        url: url.value.trim(),
        event_types: split(types.value),
        description: description.value.trim() || undefined,
      });
      notice(`Endpoint ${ep.id} created.`);
      form.reset();
      created(ep);
    } catch (err) {
      notice(`Cannot create the endpoint: ${err.message}`, "error");
    }
  });
  return form;
}

function split(text) {
  return text
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
}

export async function endpointList() {
  let cursor = null;
  const list = h("section", { "aria-label": "Endpoints" });
  const element = h("div", {}, h("h1", {}, "Endpoints"), list, newEndpointForm(() => refresh()));
  async function refresh() {
    const page = await api("GET", `/v1/endpoints${query({ limit: 50, cursor })}`);
    fill(
      list,
      table(
        "Endpoints",
        ["URL", "Event types", "Health", "Max in flight", "Created"],
        page.data.map((e) => [
          h("a", { href: `#/endpoints/${e.id}` }, e.url),
          e.event_types.join(", "),
          circuitBadge(e),
          e.max_in_flight,
          when(e.created_at),
        ]),
        "No endpoints yet: add one below.",
      ),
      pager(page, cursor, (c) => ((cursor = c), refresh())),
    );
  }
  return { element, refresh };
}

/** "First page" / "Next page" buttons for a page with `next_cursor`. */
export function pager(page, cursor, go) {
  const buttons = [];
  if (cursor) buttons.push(h("button", { type: "button", class: "secondary", onclick: () => go(null) }, "First page"));
  if (page.next_cursor)
    buttons.push(h("button", { type: "button", class: "secondary", onclick: () => go(page.next_cursor) }, "Next page"));
  return buttons.length ? h("div", { class: "pager" }, buttons) : null;
}

export async function endpointDetail(id, tab) {
  let endpoint = await api("GET", `/v1/endpoints/${encodeURIComponent(id)}`);
  const header = h("div", {});
  const body = h("div", {});
  const tabs = h(
    "div",
    { class: "tabs", role: "tablist" },
    [
      ["health", "Health"],
      ["log", "Delivery Log"],
      ["settings", "Settings"],
    ].map(([name, label]) =>
      h(
        "a",
        {
          role: "tab",
          href: `#/endpoints/${id}${name === "health" ? "" : `/${name}`}`,
          "aria-selected": String(name === tab),
        },
        label,
      ),
    ),
  );
  const element = h("div", {}, header, tabs, body);
  const drawHeader = () =>
    fill(
      header,
      h("h1", {}, endpoint.description || endpoint.url),
      h("p", { class: "meta" }, h("code", {}, endpoint.id), " ", endpoint.url, " ", circuitBadge(endpoint)),
      failingNote(endpoint),
    );
  drawHeader();
  const reload = async () => {
    endpoint = await api("GET", `/v1/endpoints/${encodeURIComponent(id)}`);
    drawHeader();
  };
  const part = tab === "log" ? deliveryLog(id) : tab === "settings" ? settings(() => endpoint, reload) : health(id);
  fill(body, part.element);
  return {
    element,
    refresh: async () => {
      await reload();
      await part.refresh?.();
    },
  };
}

function health(id) {
  let seconds = 3600;
  const totals = h("section", { "aria-label": "Attempts in range" });
  const rate = h("div", { class: "chart", id: "endpoint-rate-chart" });
  const times = h("div", { class: "chart", id: "endpoint-latency-chart" });
  const element = h(
    "div",
    {},
    rangePicker((s) => ((seconds = s), refresh())),
    totals,
    h("h2", {}, "Success rate"),
    rate,
    h("h2", {}, "Response time"),
    times,
  );
  async function refresh() {
    const stats = await loadStats(seconds, id);
    fill(totals, totalCards(stats.totals));
    lineChart(
      rate,
      "Attempts that delivered (%)",
      [{ label: "success", stroke: "#2e7d32" }],
      series(stats, [(b) => (b && b.success_rate !== null ? Math.round(b.success_rate * 1000) / 10 : null)]),
      " %",
    );
    lineChart(
      times,
      "Response time (ms, bucket bounds)",
      [
        { label: "p50", stroke: "#1565c0" },
        { label: "p90", stroke: "#ef6c00" },
        { label: "p99", stroke: "#6a1b9a" },
      ],
      series(stats, [(b) => b?.p50_ms ?? null, (b) => b?.p90_ms ?? null, (b) => b?.p99_ms ?? null]),
      " ms",
    );
  }
  return { element, refresh };
}

function deliveryLog(id) {
  let status = "";
  let cursor = null;
  const list = h("section", { "aria-label": "Delivery log" });
  const element = h(
    "div",
    {},
    statusFilter("log-status", (s) => ((status = s), (cursor = null), refresh())),
    list,
  );
  async function refresh() {
    const page = await api(
      "GET",
      `/v1/endpoints/${encodeURIComponent(id)}/attempts${query({ status, limit: 25, cursor })}`,
    );
    const rows = [];
    for (const d of page.data) {
      const attempts = d.attempts.length ? [...d.attempts].reverse() : [null];
      for (const a of attempts) {
        rows.push([
          a ? when(a.started_at) : when(d.created_at),
          h("a", { href: `#/deliveries/${d.id}` }, d.id),
          badge(d.status),
          a ? `#${a.number}` : "not yet attempted",
          a?.status_code ? badge(String(a.status_code), a.status_code < 300 ? "delivered" : "failed") : "—",
          a ? ms(a.duration_ms) : "—",
          a?.error || "—",
          a?.response_body ? h("code", { class: "body" }, a.response_body.slice(0, 120)) : "—",
        ]);
      }
    }
    fill(
      list,
      table(
        "Attempts, newest first",
        ["Time", "Delivery", "Status", "Attempt", "Status code", "Response time", "Error", "Response body"],
        rows,
        "No deliveries to this endpoint yet.",
      ),
      pager(page, cursor, (c) => ((cursor = c), refresh())),
    );
  }
  return { element, refresh };
}

function settings(current, reload) {
  const e = current();
  const url = h("input", { type: "url", value: e.url, required: true });
  const types = h("input", { type: "text", value: e.event_types.join(", "), required: true });
  const description = h("input", { type: "text", value: e.description || "" });
  const timeout = h("input", { type: "number", min: 1, max: 300000, value: e.timeout_ms });
  const inFlight = h("input", { type: "number", min: 1, value: e.max_in_flight });
  const rate = h("input", { type: "number", min: 1, value: e.rate_limit_per_s ?? "" });
  const policy = h("textarea", { rows: 3 }, JSON.stringify(e.retry_policy));
  const path = `/v1/endpoints/${encodeURIComponent(e.id)}`;
  const act = (label, f) => async () => {
    try {
      await f();
      await reload();
      notice(label);
    } catch (err) {
      notice(`${err.message}`, "error");
    }
  };
  const form = h(
    "form",
    { class: "panel", "aria-label": "Edit endpoint" },
    h("h2", {}, "Edit"),
    field("URL", url),
    field("Event types", types, "Comma-separated"),
    field("Description", description),
    field("Timeout (ms)", timeout),
    field("Max in flight", inFlight),
    field("Rate limit (per second)", rate, "Empty: no limit"),
    field("Retry policy (JSON)", policy),
    h("button", { type: "submit" }, "Save"),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let retryPolicy;
    try {
      retryPolicy = JSON.parse(policy.value);
    } catch {
      notice("The retry policy is not valid JSON.", "error");
      return;
    }
    const was = current();
    const wanted = {
      url: url.value.trim(),
      event_types: split(types.value),
      description: description.value.trim() || undefined,
      timeout_ms: Number(timeout.value),
      max_in_flight: Number(inFlight.value),
      rate_limit_per_s: rate.value ? Number(rate.value) : undefined,
      retry_policy: retryPolicy,
    };
    // Only what changed is sent.
    const change = {};
    for (const [key, value] of Object.entries(wanted)) {
      if (value !== undefined && JSON.stringify(value) !== JSON.stringify(was[key])) change[key] = value;
    }
    await act("Saved.", () => api("PATCH", path, change))();
  });
  const secret = h("code", { class: "secret" }, "hidden");
  const toggle = h("button", { type: "button" }, e.disabled ? "Enable endpoint" : "Disable endpoint");
  toggle.addEventListener("click", async () => {
    const disabled = !current().disabled;
    await act(disabled ? "Disabled." : "Enabled.", () => api("PATCH", path, { disabled }))();
    fill(toggle, current().disabled ? "Enable endpoint" : "Disable endpoint");
  });
  const element = h(
    "div",
    { class: "settings" },
    form,
    h(
      "section",
      { class: "panel", "aria-label": "Secret and state" },
      h("h2", {}, "Signing secret"),
      h("p", {}, secret),
      h(
        "div",
        { class: "actions" },
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            onclick: async () => fill(secret, (await api("GET", `${path}/secret`)).secret),
          },
          "Reveal secret",
        ),
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            onclick: async () => fill(secret, (await api("POST", `${path}/rotate-secret`)).secret),
          },
          "Rotate secret",
        ),
      ),
      h("h2", {}, "State"),
      toggle,
    ),
    bulkRetry([e], reload),
  );
  return { element };
}
