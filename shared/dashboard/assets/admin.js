// The admin page (admin keys only): models with their limit, changeable in place, and live
// in-flight counts; tenants and their keys; worker liveness.
import { api } from "./api.js";
import { h, clear, fmtISO, notice, errorText, every, confirming } from "./ui.js";

export function adminPage(main) {
  const models = h("tbody", { id: "model-rows" });
  const tenants = h("tbody", { id: "tenant-rows" });
  const workers = h("tbody", { id: "worker-rows" });
  const keys = h("section", { id: "keys", "aria-live": "polite" });
  const msg = h("div", { id: "admin-message", "aria-live": "polite" });
  const tenantName = h("input", { id: "tenant-name", required: true, maxlength: 256 });
  clear(main, h("h1", {}, "Admin"), msg,
    h("h2", {}, "Models"),
    h("table", { id: "models" }, h("thead", {}, h("tr", {}, ["Model", "Base URL", "Concurrency limit", "In flight", ""].map((c) => h("th", { scope: "col" }, c)))), models),
    h("h2", {}, "Tenants"),
    h("form", { class: "toolbar", id: "tenant-form", onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api("POST", "/v1/admin/tenants", { name: tenantName.value.trim() });
        tenantName.value = "";
        await loadTenants();
      } catch (err) { clear(msg, notice(errorText(err), true)); }
    } }, h("label", { for: "tenant-name" }, "New tenant's name", tenantName), h("button", { type: "submit" }, "Create tenant")),
    h("table", { id: "tenants" }, h("thead", {}, h("tr", {}, ["Tenant", "Name", "Created", ""].map((c) => h("th", { scope: "col" }, c)))), tenants),
    keys,
    h("h2", {}, "Workers"),
    h("table", { id: "workers" }, h("thead", {}, h("tr", {}, ["Instance", "Function", "Status", "Last heart-beat", "Processed", "Failed"].map((c) => h("th", { scope: "col" }, c)))), workers));

  // Model rows are built once and then only their in-flight cells change, so a limit being
  // edited is not overwritten by the refresh.
  const rows = new Map();
  async function loadModels() {
    const list = (await api("GET", "/v1/admin/models")).data;
    if (list.map((m) => m.name).join() !== [...rows.keys()].join()) {
      rows.clear();
      clear(models, list.map((m) => { const r = modelRow(m); rows.set(m.name, r); return r.tr; }));
    }
    for (const m of list) rows.get(m.name).update(m);
  }
  function modelRow(m) {
    let current = m;
    const id = `limit-${m.name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const limit = h("input", { id, type: "number", min: 0, step: 1, value: m.concurrency_limit, required: true, "aria-label": `Concurrency limit of ${m.name}` });
    const inflight = h("td", { class: "num", "data-in-flight": m.name });
    const save = h("button", { type: "submit" }, "Save");
    const form = h("form", { class: "toolbar", onsubmit: async (e) => {
      e.preventDefault();
      const c = current;
      try {
        current = await api("PUT", `/v1/admin/models/${encodeURIComponent(c.name)}`, { base_url: c.base_url, credential_ref: c.credential_ref,
          concurrency_limit: Number(limit.value), escalation_model: c.escalation_model || "", escalation_threshold_secs: c.escalation_threshold_secs });
        limit.value = current.concurrency_limit;
        clear(msg, notice(`${c.name}: concurrency limit ${current.concurrency_limit}.`));
      } catch (err) { clear(msg, notice(`${c.name}: ${errorText(err)}`, true)); }
    } }, limit, save);
    const tr = h("tr", { "data-model": m.name }, h("td", { class: "mono" }, m.name), h("td", { class: "mono" }, m.base_url), h("td", {}, form), inflight, h("td"));
    return { tr, update(m) {
      current = Object.assign({}, m, { concurrency_limit: current.concurrency_limit });
      inflight.textContent = String(m.in_flight);
    } };
  }

  async function loadTenants() {
    const list = (await api("GET", "/v1/admin/tenants")).data;
    clear(tenants, list.map((t) => h("tr", { "data-id": t.id }, h("td", { class: "mono" }, t.id), h("td", {}, t.name), h("td", {}, fmtISO(t.created_at)),
      h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": `Keys of ${t.name}`, onclick: () => loadKeys(t) }, "Keys")))));
  }

  async function loadKeys(t, created) {
    const list = (await api("GET", `/v1/admin/tenants/${t.id}/keys`)).data;
    const name = h("input", { id: "key-name", required: true, maxlength: 256 });
    const admin = h("input", { id: "key-admin", type: "checkbox" });
    clear(keys, h("h2", {}, `Keys of ${t.name}`),
      created ? h("div", { class: "notice", role: "status" }, "New key (shown once): ", h("span", { class: "secret", id: "new-key" }, created)) : null,
      h("form", { class: "toolbar", id: "key-form", onsubmit: async (e) => {
        e.preventDefault();
        try {
          const k = await api("POST", `/v1/admin/tenants/${t.id}/keys`, { name: name.value.trim(), admin: admin.checked });
          await loadKeys(t, k.key);
        } catch (err) { clear(msg, notice(errorText(err), true)); }
      } }, h("label", { for: "key-name" }, "New key's name", name), h("label", { for: "key-admin", class: "inline" }, admin, "admin"),
      h("button", { type: "submit" }, "Create key")),
      h("table", { id: "key-table" }, h("thead", {}, h("tr", {}, ["Id", "Prefix", "Name", "Admin", "Created", "Revoked", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, list.map((k) => h("tr", { "data-id": String(k.id) }, h("td", { class: "num" }, String(k.id)), h("td", { class: "mono" }, k.prefix),
          h("td", {}, k.name), h("td", {}, k.admin ? "yes" : "no"), h("td", {}, fmtISO(k.created_at)), h("td", {}, fmtISO(k.revoked_at)),
          h("td", {}, k.revoked_at ? null : confirming(h("button", { type: "button", class: "danger", "aria-label": `Revoke key ${k.id}` }, "Revoke"), async () => {
            try {
              await api("DELETE", `/v1/admin/keys/${k.id}`);
              await loadKeys(t);
            } catch (err) { clear(msg, notice(errorText(err), true)); }
          })))))));
  }

  async function loadWorkers() {
    const list = (await api("GET", "/v1/admin/workers")).data;
    clear(workers, list.length ? list.map((w) => h("tr", {}, h("td", { class: "mono" }, w.id), h("td", {}, w.function), h("td", { class: "status" }, w.status),
      h("td", {}, fmtISO(w.heartbeat_at)), h("td", { class: "num" }, String(w.processed)), h("td", { class: "num" }, String(w.failed))))
      : h("tr", {}, h("td", { colspan: 6 }, "No worker has reported.")));
  }

  loadTenants().catch((e) => clear(msg, notice(errorText(e), true)));
  return every(2000, () => Promise.all([loadModels(), loadWorkers()]).catch((e) => clear(msg, notice(errorText(e), true))));
}
