// The batches list and a batch's page.
import { api, text, jsonl, query, download } from "./api.js";
import { h, clear, fmtTime, fmtETA, counts, progressBar, updateProgress, countsText, notice, errorText, every, confirming, TERMINAL } from "./ui.js";

const STATUSES = ["validating", "in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled"];
const PAGE = 20;

// toUnix turns a datetime-local value into unix seconds ("" stays "").
function toUnix(v) {
  return v ? String(Math.floor(new Date(v).getTime() / 1000)) : "";
}

function throughput(b) {
  return b.throughput_per_minute === null || b.throughput_per_minute === undefined ? "—" : `${b.throughput_per_minute.toFixed(1)}/min`;
}

// batchList is #/batches: filters, a page of batches refreshed every second, and paging by the
// `after` cursor (a stack of the cursors before, for going back).
export function batchList(main, params) {
  const f = { status: params.get("status") || "", search: params.get("search") || "",
    created_after: params.get("created_after") || "", created_before: params.get("created_before") || "" };
  const cursors = [""];
  const status = h("select", { id: "filter-status" }, h("option", { value: "" }, "any"),
    STATUSES.map((s) => h("option", { value: s, selected: s === f.status }, s)));
  const search = h("input", { id: "filter-search", type: "search", value: f.search, placeholder: "id, metadata or filename" });
  const after = h("input", { id: "filter-after", type: "datetime-local" });
  const before = h("input", { id: "filter-before", type: "datetime-local" });
  const form = h("form", { class: "filters", id: "batch-filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    f.status = status.value; f.search = search.value.trim();
    f.created_after = toUnix(after.value); f.created_before = toUnix(before.value);
    cursors.length = 1;
    refresh();
  } },
  h("label", { for: "filter-status" }, "Status", status),
  h("label", { for: "filter-search" }, "Search", search),
  h("label", { for: "filter-after" }, "Created after", after),
  h("label", { for: "filter-before" }, "Created before", before),
  h("button", { type: "submit" }, "Apply"));
  const tbody = h("tbody", { id: "batch-rows" });
  const table = h("table", { id: "batches" }, h("caption", { class: "counts" }, "Refreshed every second"),
    h("thead", {}, h("tr", {}, ["Batch", "Status", "Progress", "Counts", "Throughput", "ETA", "Created"].map((c) => h("th", { scope: "col" }, c)))),
    tbody);
  const msg = h("div", { id: "batches-message" });
  const prev = h("button", { type: "button", class: "secondary", id: "page-prev", onclick: () => { cursors.pop(); refresh(); } }, "Previous");
  const next = h("button", { type: "button", class: "secondary", id: "page-next", onclick: () => { cursors.push(lastID); refresh(); } }, "Next");
  const pageNo = h("span", { class: "counts" });
  clear(main, h("h1", {}, "Batches"), form, msg, table, h("div", { class: "pager" }, prev, pageNo, next));

  const rows = new Map();
  let lastID = "";
  async function refresh() {
    let list;
    try {
      list = await api("GET", "/v1/batches" + query({ limit: PAGE, after: cursors[cursors.length - 1], ...f }));
    } catch (e) {
      clear(msg, notice(errorText(e), true));
      return;
    }
    clear(msg, list.data.length ? null : notice("No batches match."));
    lastID = list.last_id || "";
    prev.disabled = cursors.length <= 1;
    next.disabled = !list.has_more;
    pageNo.textContent = `page ${cursors.length}`;
    const ids = list.data.map((b) => b.id);
    if (ids.join() !== [...rows.keys()].join()) {
      rows.clear();
      clear(tbody, list.data.map((b) => { const r = row(b); rows.set(b.id, r); return r.tr; }));
    }
    for (const b of list.data) rows.get(b.id).update(b);
  }
  return every(1000, refresh);
}

function row(b) {
  const bar = progressBar(`Progress of ${b.id}`, false);
  const cells = { status: h("td", { class: "status" }), counts: h("td", { class: "counts" }), tp: h("td", { class: "num" }), eta: h("td") };
  const tr = h("tr", { "data-id": b.id },
    h("td", {}, h("a", { href: `#/batches/${b.id}`, class: "mono" }, b.id)),
    cells.status, h("td", {}, bar), cells.counts, cells.tp, cells.eta, h("td", {}, fmtTime(b.created_at)));
  return { tr, update(b) {
    const c = counts(b);
    updateProgress(bar, c);
    cells.status.textContent = b.status;
    cells.counts.textContent = countsText(c);
    cells.tp.textContent = throughput(b);
    cells.eta.textContent = fmtETA(b.estimated_completion_at) + (b.deadline_at_risk ? " (deadline at risk)" : "");
  } };
}

// coalescing says whether the batch coalesces its lines and how many took another line's answer
// or came from the result cache (docs/api.md, "Request coalescing").
function coalescing(b) {
  return b.coalesce ? `on: ${b.coalesced_count} coalesced, ${b.cached_count} from cache` : "off";
}

// timelineSamples turns GET /v1/batches/{id}/timeline into the chart's points: the batch's start
// with nothing finished, then the cumulative counts at the end of each span.
function timelineSamples(tl) {
  const at = (t, completed, failed) => ({ t, completed, failed, pending: Math.max(0, tl.total - completed - failed), total: tl.total });
  return [at(tl.start_ms, 0, 0), ...tl.data.map((p) => at(p.at_ms, p.completed, p.failed))];
}

// span says how long a chart covers.
function span(ms) {
  const s = ms / 1000;
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// drawChart draws the batch's counts over time (its timeline, from its start to its end or now)
// as three lines in SVG; the svg's data-completed and data-failed hold the last point.
function drawChart(svg, samples) {
  const W = 400, H = 150, P = 24;
  clear(svg);
  if (samples.length === 0) return;
  const t0 = samples[0].t, t1 = Math.max(samples[samples.length - 1].t, t0 + 1);
  const max = Math.max(1, ...samples.map((s) => s.total));
  const x = (t) => P + ((W - 2 * P) * (t - t0)) / (t1 - t0);
  const y = (v) => H - P - ((H - 2 * P) * v) / max;
  svg.append(h("svg:line", { x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#8a8a8a" }),
    h("svg:line", { x1: P, y1: P, x2: P, y2: H - P, stroke: "#8a8a8a" }),
    h("svg:text", { x: 2, y: P + 4 }, String(max)), h("svg:text", { x: 2, y: H - P }, "0"),
    h("svg:text", { x: W - P - 40, y: H - 6 }, span(t1 - t0)));
  for (const k of ["completed", "failed", "pending"]) {
    const pts = samples.map((s) => `${x(s.t).toFixed(1)},${y(s[k]).toFixed(1)}`).join(" ");
    svg.append(h("svg:polyline", { class: k, points: pts }));
  }
  const last = samples[samples.length - 1];
  svg.dataset.completed = String(last.completed);
  svg.dataset.failed = String(last.failed);
}

// errorCode is the code of a result line that did not complete: the error's code, or the
// upstream's HTTP status.
function errorCode(r) {
  if (r.error && r.error.code) return r.error.code;
  if (r.response && r.response.status_code) return `http_${r.response.status_code}`;
  return r.status;
}

function preview(r) {
  const v = r.error ? r.error.message : r.response ? JSON.stringify(r.response.body) : "";
  return v.length > 160 ? v.slice(0, 160) + "…" : v;
}

const RESULT_PAGE = 50;
const TIMELINE_EVERY_MS = 5000;
const ERROR_SCAN = 1000;

// batchPage is #/batches/<id>: the batch refreshed every second while it runs, its counts over
// time, error codes, actions and the per-line results.
export function batchPage(main, id) {
  const title = h("h1", {}, "Batch ", h("span", { class: "mono" }, id));
  const msg = h("div", { id: "batch-message", "aria-live": "polite" });
  const bar = progressBar(`Progress of ${id}`, true);
  bar.id = "batch-progress";
  const facts = h("dl", { class: "facts", id: "batch-facts" });
  const countLine = h("p", { class: "counts", id: "batch-counts" });
  const cancel = confirming(h("button", { type: "button", class: "danger", id: "batch-cancel" }, "Cancel batch"), () => act("cancel", "Cancelling."));
  const retry = h("button", { type: "button", id: "batch-retry", onclick: () => act("retry", "Failed lines queued again.") }, "Retry failed lines");
  const rerun = h("button", { type: "button", class: "secondary", id: "batch-rerun", onclick: () => rerunBatch() }, "Rerun unfinished lines");
  const extendWindow = h("input", { id: "extend-window", size: 6, placeholder: "48h", spellcheck: "false" });
  const extendForm = h("form", { class: "inline", id: "extend-form", onsubmit: (e) => { e.preventDefault(); extend(); } },
    h("label", { for: "extend-window" }, "New completion window ", extendWindow), h("button", { type: "submit", class: "secondary" }, "Extend deadline"));
  const dlOut = h("button", { type: "button", class: "secondary", id: "download-output", onclick: () => dl("output") }, "Download output");
  const dlErr = h("button", { type: "button", class: "secondary", id: "download-errors", onclick: () => dl("errors") }, "Download errors");
  const svg = h("svg:svg", { class: "chart", id: "batch-chart", viewBox: "0 0 400 150", role: "img", "aria-label": "Counts over time" });
  const codes = h("tbody", { id: "error-codes" });
  const search = h("input", { id: "results-search", type: "search", placeholder: "custom_id contains" });
  const rstatus = h("select", { id: "results-status" }, h("option", { value: "" }, "any"),
    ["pending", "in_progress", "completed", "failed", "canceled", "expired"].map((s) => h("option", { value: s }, s)));
  const results = h("tbody", { id: "results-rows" });
  const rprev = h("button", { type: "button", class: "secondary", id: "results-prev", onclick: () => { offset = Math.max(0, offset - RESULT_PAGE); loadResults(); } }, "Previous");
  const rnext = h("button", { type: "button", class: "secondary", id: "results-next", onclick: () => { offset += RESULT_PAGE; loadResults(); } }, "Next");
  const rinfo = h("span", { class: "counts", id: "results-info" });
  clear(main, h("p", {}, h("a", { href: "#/batches" }, "← Batches")), title, msg, bar, countLine, facts,
    h("div", { class: "toolbar" }, cancel, retry, rerun, dlOut, dlErr, extendForm),
    h("h2", {}, "Counts over time"),
    h("div", { class: "legend" }, h("span", { class: "completed" }, "— completed"), h("span", { class: "failed" }, "— failed"), h("span", {}, "- - pending")),
    svg,
    h("h2", {}, "Error codes"),
    h("table", { id: "error-table" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Code"), h("th", { scope: "col", class: "num" }, "Lines"))), codes),
    h("h2", { id: "results-heading" }, "Results"),
    h("form", { class: "filters", role: "search", id: "results-filters", onsubmit: (e) => { e.preventDefault(); offset = 0; loadResults(); } },
      h("label", { for: "results-search" }, "Custom id", search),
      h("label", { for: "results-status" }, "Status", rstatus),
      h("button", { type: "submit" }, "Search")),
    h("table", { id: "results", "aria-labelledby": "results-heading" },
      h("thead", {}, h("tr", {}, ["Line", "custom_id", "Status", "Latency", "Response or error"].map((c) => h("th", { scope: "col" }, c)))),
      results),
    h("div", { class: "pager" }, rprev, rinfo, rnext));

  let batch = null;
  let offset = 0;
  let failedSeen = -1;

  async function act(what, done) {
    try {
      batch = await api("POST", `/v1/batches/${id}/${what}`);
      clear(msg, notice(done));
      await refresh();
    } catch (e) {
      clear(msg, notice(errorText(e), true));
    }
  }
  // rerunBatch runs the lines of an ended batch that did not complete again, as a new batch
  // linked to this one (POST /v1/batches/{id}/rerun), and opens it.
  async function rerunBatch() {
    try {
      const b = await api("POST", `/v1/batches/${id}/rerun`);
      location.hash = `#/batches/${b.id}`;
    } catch (e) {
      clear(msg, notice(errorText(e), true));
    }
  }
  // extend moves a running batch's deadline (POST /v1/batches/{id}/extend); the API says which
  // windows it allows when one is refused.
  async function extend() {
    try {
      batch = await api("POST", `/v1/batches/${id}/extend`, { completion_window: extendWindow.value.trim() });
      clear(msg, notice(`Deadline moved to ${fmtTime(batch.expires_at)}.`));
      await refresh();
    } catch (e) {
      clear(msg, notice(errorText(e), true));
    }
  }
  async function dl(which) {
    const fid = which === "output" ? batch.output_file_id || batch.partial_output_file_id : batch.error_file_id || batch.partial_error_file_id;
    try {
      await download(fid, `${id}-${which}.jsonl`);
    } catch (e) {
      clear(msg, notice(errorText(e), true));
    }
  }

  async function loadCodes() {
    const { body } = await text(`/v1/batches/${id}/results` + query({ status: "failed,canceled,expired", limit: ERROR_SCAN }));
    const by = new Map();
    const rows = jsonl(body);
    for (const r of rows) by.set(errorCode(r), (by.get(errorCode(r)) || 0) + 1);
    const sorted = [...by.entries()].sort((a, b) => b[1] - a[1]);
    clear(codes, sorted.length ? sorted.map(([c, n]) => h("tr", {}, h("td", { class: "mono" }, c), h("td", { class: "num" }, String(n))))
      : h("tr", {}, h("td", { colspan: 2 }, "No failed lines.")),
    rows.length >= ERROR_SCAN ? h("tr", {}, h("td", { colspan: 2, class: "counts" }, `Counted over the first ${ERROR_SCAN} lines that did not complete.`)) : null);
  }

  async function loadResults() {
    try {
      const { body, headers } = await text(`/v1/batches/${id}/results` + query({ offset, limit: RESULT_PAGE, search: search.value.trim(), status: rstatus.value }));
      const rows = jsonl(body);
      clear(results, rows.length ? rows.map((r) => h("tr", { "data-custom-id": r.custom_id },
        h("td", { class: "num" }, String(r.line)), h("td", { class: "mono" }, r.custom_id), h("td", {}, r.status),
        h("td", { class: "num" }, r.latency_ms === null || r.latency_ms === undefined ? "—" : `${r.latency_ms} ms`),
        h("td", { class: "preview mono", title: preview(r) }, preview(r)))) : h("tr", {}, h("td", { colspan: 5 }, "No lines match.")));
      rprev.disabled = offset === 0;
      rnext.disabled = rows.length < RESULT_PAGE;
      rinfo.textContent = rows.length ? `lines ${offset + 1}–${headers.get("X-Last-Line")}` : "";
    } catch (e) {
      clear(msg, notice(errorText(e), true));
    }
  }

  async function refresh() {
    try {
      batch = await api("GET", `/v1/batches/${id}`);
    } catch (e) {
      clear(msg, notice(errorText(e), true));
      return;
    }
    const c = counts(batch);
    updateProgress(bar, c);
    countLine.textContent = countsText(c);
    const terminal = TERMINAL.has(batch.status);
    // The timeline changes only while the batch runs (and once more as it ends).
    // The timeline reads every finished line of the batch: every 5 s while it runs is enough
    // for a chart, and once more as it ends.
    if ((!terminal && Date.now() - drawnAt >= TIMELINE_EVERY_MS) || (terminal && !wasTerminal)) {
      drawnAt = Date.now();
      try {
        drawChart(svg, timelineSamples(await api("GET", `/v1/batches/${id}/timeline`)));
      } catch (e) {
        clear(msg, notice(errorText(e), true));
      }
    }
    clear(facts, [["Status", h("span", { class: "status", id: "batch-status" }, batch.status)], ["Endpoint", batch.endpoint],
      ["Input file", h("span", { class: "mono" }, batch.input_file_id)], ["Created", fmtTime(batch.created_at)],
      ["Expires", fmtTime(batch.expires_at)], ["Throughput", throughput(batch)],
      ["Estimated completion", fmtETA(batch.estimated_completion_at) + (batch.deadline_at_risk ? " (deadline at risk)" : "")],
      ["Coalescing", h("span", { id: "batch-coalescing" }, coalescing(batch))],
      ...(batch.rerun_of ? [["Rerun of", h("a", { href: `#/batches/${batch.rerun_of}`, class: "mono", id: "batch-rerun-of" }, batch.rerun_of)]] : []),
      ...(batch.rerun_batch_id ? [["Rerun as", h("a", { href: `#/batches/${batch.rerun_batch_id}`, class: "mono", id: "batch-rerun-as" }, batch.rerun_batch_id)]] : [])]
      .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    cancel.disabled = terminal || batch.status === "cancelling";
    // Retry runs failed lines again in place: only in a running or completed batch (a cancelled,
    // expired or stopped one is rerun instead).
    retry.disabled = c.failed === 0 || !["in_progress", "completed"].includes(batch.status);
    rerun.disabled = !terminal || c.failed === 0 || Boolean(batch.rerun_batch_id);
    for (const el of extendForm.elements) el.disabled = terminal || batch.status === "cancelling";
    dlOut.disabled = !(batch.output_file_id || batch.partial_output_file_id) || c.completed === 0;
    dlErr.disabled = !(batch.error_file_id || batch.partial_error_file_id) || c.failed === 0;
    if (c.failed !== failedSeen) {
      failedSeen = c.failed;
      loadCodes().catch((e) => clear(msg, notice(errorText(e), true)));
    }
    // Results change only while the batch runs (and once more as it ends).
    if (!terminal || !wasTerminal) await loadResults();
    wasTerminal = terminal;
  }
  let wasTerminal = false;
  let drawnAt = -Infinity;
  return every(1000, refresh);
}
