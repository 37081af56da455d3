// Archivist's page: ask with streamed answers and citations, manage documents, search.
// Plain JavaScript, no build step. Server text only ever reaches the DOM as text nodes.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { sessionId: null, offset: 0, limit: 50, status: null, deleting: new Map(), uploaded: new Map() };
const timers = {};
// Every server-sent event the page handled, for tests: {type, read, length, at}.
window.archivistEvents = [];

// Build an element: el("a", {className: "x", href: url}, "text", child).
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// --- API calls, with the bearer key once the server asked for one

const KEY = "archivist.apiKey";
function storedKey() {
  try { return localStorage.getItem(KEY); } catch { return null; }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = storedKey();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) showAuth();
  return response;
}

async function failure(response) {
  const body = await response.json().catch(() => ({}));
  const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || "");
  return `${response.status} ${response.statusText}${detail ? `: ${detail}` : ""}`;
}

async function getJson(path) {
  const response = await api(path);
  if (!response.ok) throw new Error(await failure(response));
  return response.json();
}

function showAuth() {
  $("#auth").hidden = false;
  $("#api-key").focus();
}

$("#auth").addEventListener("submit", (event) => {
  event.preventDefault();
  try { localStorage.setItem(KEY, $("#api-key").value.trim()); } catch { /* private mode: ask again */ }
  $("#auth").hidden = true;
  refreshStatus();
  refreshDocuments();
});

// --- Tabs

const VIEWS = ["ask", "documents", "search"];
function showView(name) {
  for (const view of VIEWS) {
    $(`#tab-${view}`).setAttribute("aria-selected", String(view === name));
    $(`#view-${view}`).hidden = view !== name;
  }
  if (name === "documents") refreshDocuments();
}
for (const view of VIEWS) $(`#tab-${view}`).addEventListener("click", () => showView(view));

// --- Ask

function fileLink(url, page) {
  if (!url) return null;
  return page && !url.includes("#") ? `${url}#page=${page}` : url;
}

function citationChip(citation) {
  const label = `[${citation.n}] ${citation.name}${citation.page ? ` p. ${citation.page}` : ""}`;
  const detail = [citation.section, citation.snippet].filter(Boolean).join(" — ");
  const href = fileLink(citation.url, citation.page);
  return el(href ? "a" : "span", {
    className: "citation", href, target: href ? "_blank" : null, rel: href ? "noopener" : null,
    tabIndex: href ? null : 0, title: detail,
    dataset: { path: citation.path, page: citation.page ?? "" },
  }, el("span", { className: "label" }, label), el("span", { className: "popover", role: "tooltip" }, detail));
}

function showCitations(turn, citations, unknown) {
  const box = turn.querySelector(".citations");
  box.replaceChildren(...citations.map(citationChip));
  if (unknown && unknown.length) {
    box.append(el("span", { className: "note" }, `The answer cites sources that were not given: ${unknown.map((n) => `[${n}]`).join(" ")}`));
  }
}

function seconds(ms) {
  return ms === null || ms === undefined ? "—" : `${(ms / 1000).toFixed(2)} s`;
}

function finishTurn(turn, answer) {
  const text = turn.querySelector(".answer");
  if (answer.answer) text.textContent = answer.answer;
  if (answer.session_id) state.sessionId = answer.session_id;
  if (!turn.querySelector(".citation") && answer.citations) showCitations(turn, answer.citations, answer.unknown_citations);
  const parts = [`backend ${answer.backend}`];
  if (answer.model) parts.push(`model ${answer.model}`);
  if (answer.extractive) {
    turn.classList.add("retrieval-only");
    turn.querySelector(".status").textContent =
      `Quoted from the documents: ${answer.note || "no language model wrote this answer."}`;
  } else {
    parts.push(`first token ${seconds(answer.first_token_ms)}`);
    parts.push(`${answer.tokens_per_s ? answer.tokens_per_s.toFixed(1) : "—"} tokens/s`);
  }
  turn.querySelector(".timings").textContent = parts.join(" · ");
}

function turnError(turn, message) {
  turn.classList.add("failed");
  turn.querySelector(".status").textContent = `Error: ${message}`;
}

// Server-sent events parser: feed text chunks, get (type, data) per event (blank line ends one).
function sseParser(onEvent) {
  let buffer = "", type = "", data = [];
  const line = (text) => {
    if (text === "") {
      if (data.length) onEvent(type || "message", data.join("\n"));
      type = ""; data = [];
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    const value = colon < 0 ? "" : text.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  };
  return (chunk, end = false) => {
    buffer += chunk;
    // A lone "\r" at the end may be half of "\r\n": wait for the next chunk unless this is the end.
    const ending = end ? /\r\n|\n|\r/ : /\r\n|\n|\r(?=[^\n])/;
    for (let match = ending.exec(buffer); match; match = ending.exec(buffer)) {
      line(buffer.slice(0, match.index));
      buffer = buffer.slice(match.index + match[0].length);
    }
    if (end) { if (buffer) line(buffer); line(""); buffer = ""; }
  };
}

function handleEvent(turn, type, data, read) {
  const payload = JSON.parse(data);
  const text = turn.querySelector(".answer");
  if (type === "token") text.append(payload.text);
  else if (type === "citations") showCitations(turn, payload.citations, payload.unknown_citations);
  else if (type === "done") finishTurn(turn, payload);
  else if (type === "error") turnError(turn, payload.detail || payload.reason || "the answer failed");
  window.archivistEvents.push({ type, read, length: text.textContent.length, at: performance.now() });
}

async function ask(question, turn) {
  const body = { question, stream: true };
  if (state.sessionId) body.session_id = state.sessionId;
  const response = await api("/ask", {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
  });
  if (!response.ok) return turnError(turn, await failure(response));
  if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
    return finishTurn(turn, await response.json());
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let reads = 0;
  const feed = sseParser((type, data) => handleEvent(turn, type, data, reads));
  for (;;) {
    const { value, done } = await reader.read();
    reads += 1;
    feed(value || "", done);
    if (done) break;
  }
}

function newTurn(question) {
  const turn = el("li", { className: "turn", "aria-busy": "true" },
    el("p", { className: "question" }, question),
    el("div", { className: "answer", "aria-live": "polite" }),
    el("p", { className: "status" }),
    el("div", { className: "citations" }),
    el("p", { className: "timings" }));
  $("#conversation").append(turn);
  return turn;
}

$("#ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("#question").value.trim();
  if (!question || $("#ask-button").disabled) return;
  const turn = newTurn(question);
  $("#question").value = "";
  $("#ask-button").disabled = true;
  try {
    await ask(question, turn);
  } catch (error) {
    turnError(turn, error.message);
  } finally {
    turn.setAttribute("aria-busy", "false");
    $("#ask-button").disabled = false;
    $("#question").focus();
  }
});

$("#question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("#ask-form").requestSubmit();
  }
});

$("#new-conversation").addEventListener("click", () => {
  state.sessionId = null;
  $("#conversation").replaceChildren();
  $("#question").focus();
});

// --- Documents

function documentRow(doc) {
  const deleting = state.deleting.has(doc.id);
  const status = deleting ? "deleting" : doc.status;
  const remove = el("button", { type: "button", className: "delete", disabled: deleting, "aria-label": `Delete ${doc.name}` }, "Delete");
  remove.addEventListener("click", () => deleteDocument(doc));
  const href = fileLink(doc.url, null);
  return el("tr", { className: `document ${status}`, dataset: { name: doc.name, status, id: doc.id } },
    el("td", {}, href ? el("a", { href, target: "_blank", rel: "noopener" }, doc.name) : doc.name),
    el("td", {}, doc.file_type), el("td", {}, status), el("td", { className: "number" }, String(doc.chunks)),
    el("td", { className: "number" }, doc.pages === null ? "" : String(doc.pages)),
    el("td", { className: "error" }, [doc.reason, doc.error].filter(Boolean).join(": ")),
    el("td", {}, remove));
}

function pendingRow(name, status) {
  return el("tr", { className: `document ${status}`, dataset: { name, status } },
    el("td", {}, name), el("td"), el("td", {}, status), el("td"), el("td"), el("td"), el("td"));
}

const stale = (since) => Date.now() - since > 120000;

// Files still on their way: queued or converting on the server, or just uploaded by this page.
function pendingNames(listed) {
  const ingest = (state.status && state.status.ingest) || {};
  const names = new Map((ingest.pending || []).map((name) => [name, "queued"]));
  if (ingest.current) names.set(ingest.current, "processing");
  for (const long of ingest.converting || []) names.set(long.path, "processing");
  const seen = new Set(listed.map((doc) => doc.name));
  for (const [name, since] of state.uploaded) {
    // Forget an upload once it is listed, or after a while (the filter may hide it).
    if (seen.has(name) || stale(since)) state.uploaded.delete(name);
    else if (!names.has(name)) names.set(name, "queued");
  }
  return names;
}

async function refreshDocuments() {
  clearTimeout(timers.documents);
  const query = new URLSearchParams({ offset: state.offset, limit: state.limit });
  if ($("#status-filter").value) query.set("status", $("#status-filter").value);
  try {
    const [page] = await Promise.all([getJson(`/documents?${query}`), refreshStatus()]);
    const ids = new Set(page.documents.map((doc) => doc.id));
    for (const [id, since] of state.deleting) if (!ids.has(id) || stale(since)) state.deleting.delete(id);
    const pending = [...pendingNames(page.documents)];
    // Redraw only on change: a redraw would take the focus off a Delete button.
    const drawn = JSON.stringify([pending, page.documents, [...state.deleting.keys()]]);
    if (drawn !== state.drawn) {
      state.drawn = drawn;
      const rows = pending.map(([name, status]) => pendingRow(name, status));
      $("#documents-table tbody").replaceChildren(...rows, ...page.documents.map(documentRow));
    }
    const last = Math.min(page.offset + page.documents.length, page.total);
    $("#page-label").textContent = page.total ? `${page.offset + 1}–${last} of ${page.total}` : "no documents";
    $("#page-previous").disabled = page.offset === 0;
    $("#page-next").disabled = last >= page.total;
    $("#documents-error").hidden = true;
  } catch (error) {
    $("#documents-error").textContent = `Could not list the documents: ${error.message}`;
    $("#documents-error").hidden = false;
  }
  const busy = showProgress() || state.uploaded.size || state.deleting.size;
  timers.documents = setTimeout(refreshDocuments, busy ? 2000 : 10000);
}

// What the server is still doing; a document is searchable once its chunks are indexed.
function showProgress() {
  const status = state.status || {};
  const ingest = status.ingest || {};
  const parts = [];
  if (ingest.current) parts.push(`Converting ${ingest.current} (${ingest.done} of ${ingest.total} done)`);
  else if (ingest.state === "working") parts.push("Working");
  for (const long of ingest.converting || []) parts.push(`Reading ${long.path}: page ${long.page} of ${long.pages}`);
  if ((ingest.pending || []).length) parts.push(`${ingest.pending.length} file(s) queued`);
  if (status.pending_index_work) parts.push(`${status.pending_index_work} chunk change(s) waiting to be indexed`);
  $("#ingest-progress").textContent = parts.length ? `${parts.join(" · ")}…` : "";
  return parts.length > 0;
}

const say = (message) => { $("#documents-message").textContent = message; };

async function upload(files) {
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  say(`Uploading ${files.length} file(s)…`);
  try {
    const response = await api("/documents", { method: "POST", body: form });
    if (!response.ok) throw new Error(await failure(response));
    const { accepted } = await response.json();
    for (const item of accepted) state.uploaded.set(item.name, Date.now());
    say(`Queued: ${accepted.map((item) => item.name).join(", ")}`);
  } catch (error) {
    say(`Upload failed: ${error.message}`);
  }
  $("#upload-input").value = "";
  refreshDocuments();
}

async function deleteDocument(doc) {
  if (!confirm(`Delete ${doc.name}? It is removed from the inbox and from the index.`)) return;
  try {
    const response = await api(`/documents/${doc.id}`, { method: "DELETE" });
    if (!response.ok) throw new Error(await failure(response));
    state.deleting.set(doc.id, Date.now());
    say(`Deleting ${doc.name}…`);
  } catch (error) {
    say(`Could not delete ${doc.name}: ${error.message}`);
  }
  refreshDocuments();
}

$("#upload-input").addEventListener("change", (event) => upload([...event.target.files]));
$("#status-filter").addEventListener("change", () => { state.offset = 0; refreshDocuments(); });
$("#page-previous").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); refreshDocuments(); });
$("#page-next").addEventListener("click", () => { state.offset += state.limit; refreshDocuments(); });

// Dropping files anywhere on the page uploads them.
const dragging = (on) => (event) => {
  if (![...(event.dataTransfer?.types || [])].includes("Files")) return;
  event.preventDefault();
  document.body.classList.toggle("dragging", on);
};
document.addEventListener("dragover", dragging(true));
document.addEventListener("dragleave", dragging(false));
document.addEventListener("drop", (event) => {
  dragging(false)(event);
  if (event.dataTransfer?.files.length) {
    showView("documents");
    upload([...event.dataTransfer.files]);
  }
});

// --- Search

function searchHit(hit) {
  const pages = hit.page_start ? (hit.page_end && hit.page_end !== hit.page_start ? `pp. ${hit.page_start}–${hit.page_end}` : `p. ${hit.page_start}`) : "";
  const href = fileLink(hit.url, hit.page_start);
  const title = [hit.name, pages].filter(Boolean).join(" ");
  return el("li", { className: "search-hit", dataset: { path: hit.path, page: hit.page_start ?? "" } },
    el("p", { className: "hit-head" },
      href ? el("a", { href, target: "_blank", rel: "noopener" }, title) : title,
      hit.section ? el("span", { className: "section" }, ` · ${hit.section}`) : null,
      el("span", { className: "score" }, ` · score ${Number(hit.score).toFixed(3)}`)),
    el("p", { className: "snippet" }, hit.snippet));
}

$("#search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = new URLSearchParams({ q: $("#search-query").value.trim(), mode: $("#search-mode").value, k: 10 });
  $("#search-message").textContent = "Searching…";
  try {
    const { hits } = await getJson(`/search?${query}`);
    $("#search-results").replaceChildren(...hits.map(searchHit));
    $("#search-message").textContent = hits.length ? `${hits.length} result(s)` : "No results.";
  } catch (error) {
    $("#search-results").replaceChildren();
    $("#search-message").textContent = `Search failed: ${error.message}`;
  }
});

// --- Footer: store counts and the model, every 5 s

function describeStores(stores) {
  if (!stores) return "";
  if (stores.error) return `stores: ${stores.error}`;
  if (stores.in_sync) return "stores in sync";
  const keyword = "qdrant_bm25" in stores ? `qdrant bm25 ${stores.qdrant_bm25}` : `tantivy ${stores.tantivy}`;
  return `stores out of sync (sqlite ${stores.sqlite}, ${keyword}, qdrant ${stores.qdrant})`;
}

const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;

async function refreshStatus() {
  try {
    const status = await getJson("/status");
    state.status = status;
    const counts = [
      `${plural(status.documents.ingested, "document")} ingested`, `${status.documents.failed} failed`,
      plural(status.chunks, "chunk"), describeStores(status.stores), `${status.pending_index_work} pending index work`,
    ];
    $("#store-counts").textContent = counts.filter(Boolean).join(" · ");
    const llm = status.llm || {};
    const model = llm.backend ? [llm.backend, llm.model].filter(Boolean).join(" ") : llm.configured;
    $("#model-name").textContent = `model: ${model || "unknown"}`;
  } catch (error) {
    $("#store-counts").textContent = `Status unavailable: ${error.message}`;
  }
}

setInterval(refreshStatus, 5000);
refreshDocuments();
