// The JSON API as the pages call it: the signed-in key (kept in this tab's session storage, gone
// when the tab closes) is the bearer token of every call; nothing else is stored.

const KEY = "fusillade.key";
const ADMIN = "fusillade.admin";

export const session = {
  key: () => sessionStorage.getItem(KEY) || "",
  admin: () => sessionStorage.getItem(ADMIN) === "true",
  set(key, admin) {
    sessionStorage.setItem(KEY, key);
    sessionStorage.setItem(ADMIN, String(admin));
  },
  clear() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(ADMIN);
  },
};

// APIError is an answer outside 2xx, with OpenAI's error envelope when the API sent one.
export class APIError extends Error {
  constructor(status, envelope, text) {
    const e = envelope && envelope.error;
    super(e ? e.message : `HTTP ${status}: ${text.slice(0, 200)}`);
    this.status = status;
    this.error = e || null;
  }
}

function authHeaders(extra) {
  return Object.assign({ Authorization: "Bearer " + session.key() }, extra || {});
}

async function check(r) {
  const text = await r.text();
  if (!r.ok) {
    let env = null;
    try { env = JSON.parse(text); } catch { /* not JSON */ }
    if (r.status === 401) window.dispatchEvent(new CustomEvent("fusillade:unauthorized"));
    throw new APIError(r.status, env, text);
  }
  return text;
}

// api calls a JSON route and returns the decoded answer.
export async function api(method, path, body) {
  const init = { method, headers: authHeaders() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const text = await check(await fetch(path, init));
  return text ? JSON.parse(text) : null;
}

// text calls a route that answers text (JSONL content, results) and returns it with its headers.
export async function text(path) {
  const r = await fetch(path, { headers: authHeaders() });
  const body = await check(r);
  return { body, headers: r.headers };
}

// jsonl splits JSONL into objects, skipping blank lines.
export function jsonl(s) {
  return s.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
}

// query builds a query string from the set values of params.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

// send sends body with XMLHttpRequest, the one browser API that reports upload progress, and
// resolves with the answer's text; onProgress gets the fraction sent.
function send(method, url, body, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open(method, url);
    for (const [k, v] of Object.entries(headers)) x.setRequestHeader(k, v);
    x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    x.onload = () => {
      if (x.status >= 200 && x.status < 300) { onProgress(1); resolve(x.responseText); return; }
      let env = null;
      try { env = JSON.parse(x.responseText); } catch { /* not JSON */ }
      reject(new APIError(x.status, env, x.responseText));
    };
    x.onerror = () => reject(new Error(`${method} ${new URL(url, location.href).host}: the connection failed`));
    x.send(body);
  });
}

// MAX_DIRECT_UPLOAD is the API's cap on a multipart upload (httpapi.DefaultMaxDirectUploadBytes,
// 4.5 MB, what fits a Lambda invocation); a larger file takes the presigned path, as the CLI does.
export const MAX_DIRECT_UPLOAD = 4_500_000;

// uploadFile stores a batch input file: multipart up to MAX_DIRECT_UPLOAD, else the presigned
// path (POST /v1/files with the size, PUT the bytes to the URL it answers, then complete, which
// validates). It resolves with the File; a rejected file rejects with the API's error, whose
// envelope lists every bad line.
export async function uploadFile(file, onProgress) {
  if (file.size <= MAX_DIRECT_UPLOAD) {
    const form = new FormData();
    form.append("purpose", "batch");
    form.append("file", file, file.name);
    return JSON.parse(await send("POST", "/v1/files", form, authHeaders(), onProgress));
  }
  const pending = await api("POST", "/v1/files", { filename: file.name, purpose: "batch", bytes: file.size });
  // Content-Length is the browser's to set (it is a forbidden header); the others are sent.
  const headers = {};
  for (const [k, v] of Object.entries(pending.upload_headers || {})) {
    if (k.toLowerCase() !== "content-length") headers[k] = v;
  }
  await send(pending.upload_method || "PUT", pending.upload_url, file, headers, onProgress);
  return api("POST", `/v1/files/${pending.id}/complete`);
}

// download fetches a file's content with the key and hands it to the browser as a download.
export async function download(fileID, name) {
  const r = await fetch(`/v1/files/${fileID}/content`, { headers: authHeaders() });
  if (!r.ok) await check(r);
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
