// The files page: upload (with progress; the presigned path for large files), list, validate
// with every bad line shown, delete.
import { api, query, uploadFile, APIError } from "./api.js";
import { h, clear, fmtTime, fmtBytes, notice, errorText, confirming } from "./ui.js";

const PAGE = 50;
// ENDPOINTS are the batch endpoints (domain.Endpoints) a file can be checked against.
const ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"];

// problems is the table of bad lines of a rejected upload or a validation report.
function problems(list, truncated) {
  return [h("table", { class: "problems" },
    h("thead", {}, h("tr", {}, ["Line", "custom_id", "Code", "Message"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, list.map((p) => h("tr", { "data-line": p.line === null ? "" : String(p.line) },
      h("td", { class: "num" }, p.line === null ? "—" : String(p.line)), h("td", { class: "mono" }, p.custom_id ?? "—"),
      h("td", { class: "mono" }, p.code ?? "—"), h("td", {}, p.message))))),
  truncated ? h("p", { class: "counts" }, "The list stops at 1,000 bad lines; there are more.") : null];
}

export function filesPage(main) {
  const input = h("input", { id: "upload-file", type: "file", accept: ".jsonl,application/jsonl,application/x-ndjson", required: true });
  const progress = h("progress", { id: "upload-progress", max: 1, value: 0, "aria-label": "Upload progress" });
  const out = h("div", { id: "upload-result", "aria-live": "polite" });
  const form = h("form", { id: "upload-form", class: "toolbar", onsubmit: async (e) => {
    e.preventDefault();
    const file = input.files[0];
    if (!file) return;
    progress.value = 0;
    clear(out, notice(`Uploading ${file.name}…`));
    try {
      const f = await uploadFile(file, (p) => { progress.value = p; });
      clear(out, notice(`Uploaded ${file.name} as ${f.id}.`));
      form.reset();
      cursors.length = 1;
      await refresh();
    } catch (err) {
      const env = err instanceof APIError ? err.error : null;
      clear(out, notice(`${file.name} was refused: ${errorText(err)}`, true), env && env.errors ? problems(env.errors, env.truncated) : null);
    }
  } },
  h("label", { for: "upload-file" }, "Batch input file (JSONL)", input),
  h("button", { type: "submit" }, "Upload"),
  h("label", { for: "upload-progress" }, "Progress", progress));
  const endpoint = h("select", { id: "validate-endpoint" }, h("option", { value: "" }, "any (each line's own)"),
    ENDPOINTS.map((e) => h("option", { value: e }, e)));
  const tbody = h("tbody", { id: "file-rows" });
  const report = h("section", { id: "validation", "aria-live": "polite" });
  const msg = h("div", { id: "files-message" });
  const prev = h("button", { type: "button", class: "secondary", onclick: () => { cursors.pop(); refresh(); } }, "Previous");
  const next = h("button", { type: "button", class: "secondary", onclick: () => { cursors.push(lastID); refresh(); } }, "Next");
  clear(main, h("h1", {}, "Files"), h("h2", {}, "Upload"), form, out, h("h2", {}, "Your files"), msg,
    h("div", { class: "toolbar" }, h("label", { for: "validate-endpoint" }, "Validate against the endpoint", endpoint)),
    h("table", { id: "files" }, h("thead", {}, h("tr", {}, ["File", "Name", "Purpose", "Size", "Status", "Created", "Actions"].map((c) => h("th", { scope: "col" }, c)))), tbody),
    h("div", { class: "pager" }, prev, next), report);

  const cursors = [""];
  let lastID = "";

  async function validate(f) {
    clear(report, h("h2", {}, "Validation of ", h("span", { class: "mono" }, f.id)), notice("Checking…"));
    try {
      const r = await api("POST", `/v1/files/${f.id}/validate`, endpoint.value ? { endpoint: endpoint.value } : undefined);
      clear(report, h("h2", {}, "Validation of ", h("span", { class: "mono" }, f.id)),
        notice(r.valid ? `Valid: ${r.total_requests} requests.` : `${r.errors.length}${r.errors_truncated ? "+" : ""} bad line(s).`, !r.valid),
        r.models.length ? h("p", { class: "counts" }, "Models: " + r.models.map((m) => `${m.model} (${m.requests})`).join(", ")) : null,
        r.errors.length ? problems(r.errors, r.errors_truncated) : null);
      report.dataset.valid = String(r.valid);
      report.focus();
    } catch (e) {
      clear(report, notice(errorText(e), true));
    }
  }
  async function remove(f) {
    try {
      await api("DELETE", `/v1/files/${f.id}`);
      clear(msg, notice(`Deleted ${f.id}.`));
      await refresh();
    } catch (e) {
      clear(msg, notice(errorText(e), true));
    }
  }

  async function refresh() {
    let list;
    try {
      list = await api("GET", "/v1/files" + query({ limit: PAGE, after: cursors[cursors.length - 1] }));
    } catch (e) {
      clear(msg, notice(errorText(e), true));
      return;
    }
    lastID = list.last_id || "";
    prev.disabled = cursors.length <= 1;
    next.disabled = !list.has_more;
    clear(tbody, list.data.length ? list.data.map((f) => h("tr", { "data-id": f.id },
      h("td", { class: "mono" }, f.id), h("td", {}, f.filename), h("td", {}, f.purpose), h("td", { class: "num" }, fmtBytes(f.bytes)),
      h("td", {}, f.status), h("td", {}, fmtTime(f.created_at)),
      h("td", {}, f.purpose === "batch" && f.status === "processed"
        ? h("button", { type: "button", class: "secondary", "aria-label": `Validate ${f.filename} (${f.id})`, onclick: () => validate(f) }, "Validate") : null,
      " ", confirming(h("button", { type: "button", class: "danger", "aria-label": `Delete ${f.filename} (${f.id})` }, "Delete"), () => remove(f)))))
      : h("tr", {}, h("td", { colspan: 7 }, "No files yet.")));
  }
  report.tabIndex = -1;
  refresh();
  return () => {};
}
