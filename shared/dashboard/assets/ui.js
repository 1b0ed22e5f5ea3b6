// Small DOM helpers shared by the pages.

// h builds an element: attrs sets attributes (on* keys become listeners, false/null skip),
// children are nodes or strings.
export function h(tag, attrs, ...children) {
  const ns = tag.startsWith("svg:") ? "http://www.w3.org/2000/svg" : null;
  const el = ns ? document.createElementNS(ns, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export function fmtTime(unix) {
  if (unix === null || unix === undefined) return "—";
  return new Date(unix * 1000).toLocaleString();
}

export function fmtISO(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function fmtBytes(n) {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  return `${(n / 1e6).toFixed(1)} MB`;
}

// fmtETA says when a running batch is expected to finish, relative to now.
export function fmtETA(unix) {
  if (unix === null || unix === undefined) return "—";
  const s = Math.round(unix - Date.now() / 1000);
  if (s <= 0) return "now";
  if (s < 120) return `in ${s} s`;
  if (s < 7200) return `in ${Math.round(s / 60)} min`;
  return `in ${(s / 3600).toFixed(1)} h`;
}

export const TERMINAL = new Set(["completed", "failed", "expired", "cancelled"]);

// counts splits a batch's request counts into completed, failed and pending.
export function counts(b) {
  const c = b.request_counts || { total: 0, completed: 0, failed: 0 };
  return { total: c.total, completed: c.completed, failed: c.failed, pending: Math.max(0, c.total - c.completed - c.failed) };
}

// progressBar is a batch's progress as an ARIA progressbar: its value is the lines finished
// (completed or failed) of the total, drawn as a completed and a failed segment over the pending
// remainder. updateProgress changes it in place.
export function progressBar(label, large) {
  const bar = h("div", { class: large ? "bar large" : "bar", role: "progressbar", "aria-label": label, "aria-valuemin": 0 },
    h("span", { class: "ok" }), h("span", { class: "bad" }));
  return bar;
}

export function updateProgress(bar, c) {
  const done = c.completed + c.failed;
  bar.setAttribute("aria-valuemax", String(Math.max(c.total, 1)));
  bar.setAttribute("aria-valuenow", String(done));
  bar.setAttribute("aria-valuetext", `${c.completed} completed, ${c.failed} failed, ${c.pending} pending of ${c.total}`);
  const pct = (n) => (c.total > 0 ? (100 * n) / c.total : 0);
  // CSSOM, not a style attribute: the Content-Security-Policy allows no inline styles.
  bar.children[0].style.width = pct(c.completed) + "%";
  bar.children[1].style.width = pct(c.failed) + "%";
}

export function countsText(c) {
  return `${c.completed} completed · ${c.failed} failed · ${c.pending} pending`;
}

// notice shows a message (role=alert for errors, role=status otherwise).
export function notice(msg, isError) {
  return h("div", { class: isError ? "notice error" : "notice", role: isError ? "alert" : "status" }, msg);
}

export function errorText(e) {
  return e && e.message ? e.message : String(e);
}

// every runs fn now and then every ms until the returned stop is called; a run that is still
// going is not overlapped.
export function every(ms, fn) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (e) { console.error(e); }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

// confirming makes a destructive button ask before it acts: the first click arms it (its label
// becomes "Confirm: …?" and data-armed is set) and a second click within 5 s runs action; left
// alone it disarms. One click never cancels a batch, deletes a file or revokes a key.
export function confirming(button, action) {
  const label = button.textContent;
  const aria = button.getAttribute("aria-label");
  let timer = null;
  const disarm = () => {
    clearTimeout(timer);
    delete button.dataset.armed;
    button.textContent = label;
    if (aria) button.setAttribute("aria-label", aria);
  };
  button.addEventListener("click", () => {
    if (button.dataset.armed !== "true") {
      button.dataset.armed = "true";
      button.textContent = `Confirm: ${label.toLowerCase()}?`;
      if (aria) button.setAttribute("aria-label", `Confirm: ${aria}?`);
      timer = setTimeout(disarm, 5000);
      return;
    }
    disarm();
    action();
  });
  button.addEventListener("blur", disarm);
  return button;
}
