// The dashboard's shell: sign-in, navigation and a hash router (#/batches, #/batches/<id>,
// #/files, #/webhooks, #/admin). Each page renders into <main> and returns a function that stops its timers.
import { api, session, APIError } from "./api.js";
import { h, clear, notice, errorText } from "./ui.js";
import { batchList, batchPage } from "./batches.js";
import { filesPage } from "./files.js";
import { adminPage } from "./admin.js";
import { webhooksPage } from "./webhooks.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let stop = () => {};

function signIn(message) {
  nav.hidden = true;
  const input = h("input", { id: "api-key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const out = h("div", { id: "sign-in-result" }, message ? notice(message, true) : null);
  const form = h("form", { class: "signin", id: "sign-in", onsubmit: async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    session.set(key, false);
    try {
      await api("GET", "/v1/batches?limit=1");
    } catch (err) {
      session.clear();
      clear(out, notice(err instanceof APIError && err.status === 401 ? "That key was refused." : errorText(err), true));
      return;
    }
    // An admin key reaches the admin routes; any other key gets their 404.
    let admin = false;
    try {
      await api("GET", "/v1/admin/models");
      admin = true;
    } catch { /* a tenant key */ }
    session.set(key, admin);
    if (!location.hash || location.hash === "#/sign-in") location.hash = "#/batches";
    route();
  } },
  h("h1", {}, "Sign in"),
  h("p", {}, "Use an API key. It is kept in this browser tab only (session storage) and sent as the bearer token of every call."),
  h("label", { for: "api-key" }, "API key", input),
  h("p", {}, h("button", { type: "submit" }, "Sign in")),
  out);
  clear(main, form);
  input.focus();
}

function route() {
  stop();
  stop = () => {};
  if (!session.key()) { signIn(); return; }
  nav.hidden = false;
  document.getElementById("nav-admin").hidden = !session.admin();
  const hash = location.hash.replace(/^#/, "") || "/batches";
  const [path, qs] = hash.split("?");
  const params = new URLSearchParams(qs || "");
  const parts = path.split("/").filter(Boolean);
  let page = parts[0] || "batches";
  for (const a of nav.querySelectorAll("a[data-page]")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  clear(main);
  if (page === "batches" && parts[1]) stop = batchPage(main, parts[1]);
  else if (page === "batches") stop = batchList(main, params);
  else if (page === "files") stop = filesPage(main);
  else if (page === "webhooks") stop = webhooksPage(main);
  else if (page === "admin" && session.admin()) stop = adminPage(main);
  else { page = "none"; clear(main, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/batches" }, "Batches"))); }
  document.title = `fusillade · ${page}`;
}

document.getElementById("sign-out").addEventListener("click", () => {
  session.clear();
  location.hash = "";
  route();
});
window.addEventListener("fusillade:unauthorized", () => {
  session.clear();
  stop();
  signIn("The key was refused (revoked or invalid). Sign in again.");
});
window.addEventListener("hashchange", route);
route();
