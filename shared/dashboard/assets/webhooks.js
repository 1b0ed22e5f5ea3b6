// The webhooks page: the tenant's endpoints (register — the signing secret is shown once —,
// delete) and each endpoint's deliveries with their attempts (docs/api.md, "Webhooks").
import { api, query } from "./api.js";
import { h, clear, fmtTime, notice, errorText, confirming, every } from "./ui.js";

// EVENT_TYPES are domain.WebhookEventTypes, in the same order.
const EVENT_TYPES = ["batch.completed", "batch.failed", "batch.expired", "batch.cancelled", "batch.progress", "batch.deadline_at_risk"];
const TERMINAL_EVENTS = new Set(["batch.completed", "batch.failed", "batch.expired", "batch.cancelled"]);

export function webhooksPage(main) {
  const msg = h("div", { id: "webhook-message", "aria-live": "polite" });
  const url = h("input", { id: "webhook-url", type: "url", required: true, size: 40, placeholder: "https://example.com/hooks/fusillade", spellcheck: "false" });
  const boxes = EVENT_TYPES.map((t) => h("input", { type: "checkbox", value: t, id: `event-${t}`, checked: TERMINAL_EVENTS.has(t) }));
  const percent = h("input", { id: "progress-percent", type: "number", min: 0, max: 100, value: 0 });
  const minutes = h("input", { id: "progress-minutes", type: "number", min: 0, value: 0 });
  const rows = h("tbody", { id: "webhook-rows" });
  const deliveries = h("section", { id: "deliveries", "aria-live": "polite" });
  const form = h("form", { id: "webhook-form", onsubmit: async (e) => {
    e.preventDefault();
    const body = { url: url.value.trim(), event_types: boxes.filter((b) => b.checked).map((b) => b.value) };
    if (Number(percent.value) > 0) body.progress_every_percent = Number(percent.value);
    if (Number(minutes.value) > 0) body.progress_every_minutes = Number(minutes.value);
    try {
      const w = await api("POST", "/v1/webhooks", body);
      url.value = "";
      // The secret is in this answer only: shown once, never read back.
      clear(msg, h("div", { class: "notice", role: "status" }, `Registered ${w.id}. Its signing secret (shown once; keep it now): `,
        h("span", { class: "secret mono", id: "webhook-secret" }, w.signing_secret)));
      await load();
    } catch (err) {
      clear(msg, notice(errorText(err), true));
    }
  } },
  h("label", { for: "webhook-url" }, "Endpoint URL", url),
  h("fieldset", {}, h("legend", {}, "Events"), boxes.map((b) => h("label", { for: b.id, class: "inline" }, b, b.value))),
  h("label", { for: "progress-percent" }, "batch.progress every N % (0 = off)", percent),
  h("label", { for: "progress-minutes" }, "batch.progress every N minutes (0 = off)", minutes),
  h("p", {}, h("button", { type: "submit" }, "Register endpoint")));
  clear(main, h("h1", {}, "Webhooks"), msg, form,
    h("table", { id: "webhooks" }, h("thead", {}, h("tr", {}, ["Endpoint", "URL", "Events", "Secret", "Created", ""].map((c) => h("th", { scope: "col" }, c)))), rows),
    deliveries);

  let open = null;
  async function load() {
    const list = (await api("GET", "/v1/webhooks")).data;
    clear(rows, list.length ? list.map((w) => h("tr", { "data-id": w.id },
      h("td", { class: "mono" }, w.id), h("td", { class: "mono" }, w.url),
      h("td", {}, w.event_types.join(", ") + (w.progress_every_percent ? ` (every ${w.progress_every_percent} %)` : "") +
        (w.progress_every_minutes ? ` (every ${w.progress_every_minutes} min)` : "")),
      h("td", { class: "mono" }, w.signing_secret_hint + "…"), h("td", {}, fmtTime(w.created_at)),
      h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": `Deliveries of ${w.id}`, onclick: () => { open = w; loadDeliveries(); } }, "Deliveries"),
        " ", confirming(h("button", { type: "button", class: "danger", "aria-label": `Delete ${w.id}` }, "Delete"), async () => {
          try {
            await api("DELETE", `/v1/webhooks/${w.id}`);
            if (open && open.id === w.id) { open = null; clear(deliveries); }
            clear(msg, notice(`Deleted ${w.id}.`));
            await load();
          } catch (err) { clear(msg, notice(errorText(err), true)); }
        }))))
      : h("tr", {}, h("td", { colspan: 6 }, "No endpoint is registered.")));
  }

  async function loadDeliveries() {
    if (!open) return;
    const list = (await api("GET", `/v1/webhooks/${open.id}/deliveries` + query({ limit: 50 }))).data;
    const last = (d) => (d.attempt_log.length ? d.attempt_log[d.attempt_log.length - 1] : null);
    clear(deliveries, h("h2", {}, "Deliveries to ", h("span", { class: "mono" }, open.url)),
      h("table", { id: "delivery-table" }, h("thead", {}, h("tr", {}, ["Event", "Type", "Batch", "State", "Attempts", "Last answer", "Next attempt"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", { id: "delivery-rows" }, list.length ? list.map((d) => h("tr", { "data-id": d.id, "data-state": d.state },
          h("td", { class: "mono" }, d.id), h("td", {}, d.event_type),
          h("td", {}, h("a", { href: `#/batches/${d.batch_id}`, class: "mono" }, d.batch_id)),
          h("td", { class: "status" }, d.state), h("td", { class: "num" }, String(d.attempts)),
          h("td", {}, last(d) ? (last(d).status_code ? `HTTP ${last(d).status_code}` : last(d).error || "no answer") + ` in ${last(d).latency_ms} ms` : "—"),
          h("td", {}, d.next_attempt_at ? fmtTime(d.next_attempt_at) : "—")))
          : h("tr", {}, h("td", { colspan: 7 }, "No event yet.")))));
  }

  load().catch((e) => clear(msg, notice(errorText(e), true)));
  // Deliveries move as the maintenance pass sends them: refreshed every 5 s while shown.
  return every(5000, () => loadDeliveries().catch((e) => clear(msg, notice(errorText(e), true))));
}
