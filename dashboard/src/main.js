// The dashboard's shell: sign-in, the tenant picker, navigation by URL hash, and the refresh loop.
import { api, session } from "./api.js";
import { fill, h, notice } from "./dom.js";
import { overview } from "./views/overview.js";
import { endpointList, endpointDetail } from "./views/endpoints.js";
import { outstanding, deliveryDetail } from "./views/deliveries.js";
import { search, jobList, jobDetail, eventDetail } from "./views/search.js";

const REFRESH_MS = 5000;
const routes = [
  [/^#?\/?$/, () => overview()],
  [/^#\/endpoints$/, () => endpointList()],
  [/^#\/endpoints\/([^/]+)(?:\/(log|settings))?$/, (m) => endpointDetail(m[1], m[2] || "health")],
  [/^#\/outstanding$/, () => outstanding()],
  [/^#\/deliveries\/([^/]+)$/, (m) => deliveryDetail(m[1])],
  [/^#\/events\/([^/]+)$/, (m) => eventDetail(m[1])],
  [/^#\/jobs$/, () => jobList()],
  [/^#\/jobs\/([^/]+)$/, (m) => jobDetail(m[1])],
  [/^#\/search(?:\/(.*))?$/, (m) => search(decodeURIComponent(m[1] || ""))],
];
let current = null;
let live = true;

function signInForm(message) {
  const token = h("input", { type: "password", name: "token", autocomplete: "off", required: true });
  const error = h("p", { class: "error", role: "alert" }, message || "");
  const form = h(
    "form",
    { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Herald"),
    h("p", {}, "Sign in with an API token: the admin token, or a tenant's htk_… token."),
    h("div", { class: "field" }, h("label", { for: "token" }, "API token"), Object.assign(token, { id: "token" })),
    h("button", { type: "submit" }, "Sign in"),
    error,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("GET", "/v1/endpoints?limit=1", undefined, token.value.trim());
      session.signIn(token.value.trim());
      shell();
    } catch (err) {
      fill(error, err.status === 401 ? "That token is not valid." : `Cannot sign in: ${err.message}`);
    }
  });
  fill(document.getElementById("app"), h("main", { class: "signin-page" }, form));
  token.focus();
}

async function tenantPicker() {
  if (!session.admin) return h("span", { class: "tenant" }, "Tenant: your own");
  const select = h("select", { id: "tenant" });
  try {
    const tenants = await api("GET", "/v1/tenants");
    const ids = ["default", ...tenants.data.map((t) => t.id).filter((id) => id !== "default")];
    for (const id of ids) select.append(h("option", { value: id, selected: id === session.tenant }, id));
  } catch {
    select.append(h("option", { value: session.tenant }, session.tenant));
  }
  select.addEventListener("change", () => {
    session.tenant = select.value;
    render();
  });
  return h("div", { class: "tenant" }, h("label", { for: "tenant" }, "Tenant"), select);
}

async function shell() {
  const nav = h(
    "nav",
    { "aria-label": "Sections" },
    [
      ["#/", "Overview"],
      ["#/endpoints", "Endpoints"],
      ["#/outstanding", "Outstanding"],
      ["#/jobs", "Jobs"],
      ["#/search", "Search"],
    ].map(([href, text]) => h("a", { href, "data-nav": href }, text)),
  );
  const liveBox = h("input", { type: "checkbox", id: "live", checked: live });
  liveBox.addEventListener("change", () => (live = liveBox.checked));
  const signOut = h("button", { type: "button", class: "secondary" }, "Sign out");
  signOut.addEventListener("click", () => {
    session.signOut();
    signInForm();
  });
  fill(
    document.getElementById("app"),
    h(
      "header",
      {},
      h("a", { class: "brand", href: "#/" }, "Herald"),
      nav,
      h(
        "div",
        { class: "controls" },
        await tenantPicker(),
        h("span", { class: "live" }, liveBox, h("label", { for: "live" }, "Refresh")),
        signOut,
      ),
    ),
    h("div", { id: "notices", "aria-live": "polite" }),
    h("main", { id: "view", tabindex: "-1" }),
  );
  render();
}

async function render() {
  if (!session.token) return signInForm();
  const hash = location.hash || "#/";
  for (const link of document.querySelectorAll("[data-nav]")) {
    const target = link.getAttribute("data-nav");
    const active = target === "#/" ? hash === "#/" : hash.startsWith(target);
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = document.getElementById("view");
  if (!view) return shell();
  const route = routes.find(([pattern]) => pattern.test(hash));
  if (!route) {
    fill(view, h("h1", {}, "Not found"), h("p", {}, "There is no such page."));
    return;
  }
  try {
    current = await route[1](hash.match(route[0]));
    fill(view, current.element);
    await current.refresh?.();
  } catch (err) {
    current = null;
    if (err.status === 401) {
      session.signOut();
      return signInForm("Your token is no longer valid; sign in again.");
    }
    fill(view, h("h1", {}, "Cannot show this page"), h("p", { class: "error" }, err.message));
  }
}

setInterval(async () => {
  if (!live || !current?.refresh || document.hidden) return;
  const focused = document.activeElement;
  if (focused && ["INPUT", "TEXTAREA", "SELECT"].includes(focused.tagName) && focused.id !== "live") return;
  try {
    await current.refresh();
  } catch (err) {
    notice(`Refresh failed: ${err.message}`, "error");
  }
}, REFRESH_MS);

window.addEventListener("hashchange", render);
window.addEventListener("DOMContentLoaded", () => (session.token ? shell() : signInForm()));
