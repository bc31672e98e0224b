// semkit web UI: plain JavaScript over the JSON API, no libraries, no network beyond this server.
// Every text from the database is inserted as text (textContent) or escaped, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { key: localStorage.getItem("semkit-key") || "", auth: true, collection: "", collections: {},
                map: null };

// --- API ------------------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.key) headers["Authorization"] = "Bearer " + state.key;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const msg = (data && data.error && data.error.message) || res.statusText;
    throw new Error(res.status + ": " + msg);
  }
  return data;
}

function status(text, isError) {
  const el = $("#status");
  el.textContent = text || "";
  el.className = isError ? "error" : "";
}

async function guarded(fn) {
  try { await fn(); } catch (e) { status(e.message, true); }
}

async function job(path, body) {
  // Long apps run as background jobs: start one, then poll its progress.
  let j = await api("POST", path, Object.assign({}, body, { background: true }));
  while (j.state === "queued" || j.state === "running") {
    const p = j.progress;
    status(j.kind + " " + j.state + (p.total ? " " + Math.round(100 * p.done / p.total) + "%" : "…"));
    await new Promise((r) => setTimeout(r, 300));
    j = await api("GET", "/v1/jobs/" + j.id);
  }
  if (j.state !== "succeeded") throw new Error(j.kind + " " + j.state + ": " + (j.error ? j.error.message : ""));
  return j.result;
}

const colPath = (suffix) => "/v1/collections/" + encodeURIComponent(state.collection) + suffix;

// --- helpers --------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}

// Text with [start, end) spans wrapped in <mark>, built from text nodes (no HTML injection).
function marked(text, spans) {
  const frag = document.createDocumentFragment();
  let at = 0;
  for (const [s, e] of (spans || []).slice().sort((a, b) => a[0] - b[0])) {
    if (s < at) continue;
    frag.append(document.createTextNode(text.slice(at, s)));
    frag.append(el("mark", {}, text.slice(s, e)));
    at = e;
  }
  frag.append(document.createTextNode(text.slice(at)));
  return frag;
}

// Spans of the query's words in a text, for results that came without highlights.
function termSpans(text, query) {
  const terms = (query.toLowerCase().match(/\w{3,}/g) || []);
  const spans = [];
  const re = /\w+/g;
  let m;
  while ((m = re.exec(text)) !== null) {
    const w = m[0].toLowerCase();
    if (terms.some((t) => w.startsWith(t.slice(0, Math.max(3, t.length - 2))))) spans.push([m.index, m.index + w.length]);
  }
  return spans;
}

async function openRecord(id) {
  await guarded(async () => {
    const r = await api("GET", colPath("/records/" + encodeURIComponent(id)));
    $("#detail-id").textContent = r.id;
    $("#detail-text").textContent = r.text || "(no text)";
    const meta = Object.assign({}, r.metadata || {});
    const thumb = thumbnailOf(r);
    delete meta.thumbnail;
    $("#detail-meta").textContent = JSON.stringify(meta, null, 2);
    const img = $("#detail-image");
    img.hidden = !thumb;
    if (thumb) img.src = thumb;
    $("#detail").hidden = false;
  });
}

// --- search ---------------------------------------------------------------------------------

async function runSearch(ev) {
  ev.preventDefault();
  await guarded(async () => {
    const query = $("#query").value.trim();
    const body = { query, mode: $("#mode").value, k: parseInt($("#k").value, 10) || 10,
                   diversity: parseFloat($("#diversity").value) || 0,
                   min_score: minScore() };
    if (!$("#rerank-box").hidden && $("#rerank").checked) body.rerank = true;
    const where = $("#where").value.trim();
    if (where) {
      try { body.where = JSON.parse(where); } catch (e) { throw new Error("the filter is not valid JSON: " + e.message); }
    }
    $("#image-preview").hidden = true;
    await searchAndShow(body, query);
  });
}

// The cut-off of a text search, as `semkit search` chooses it (cli/search_cmds.py): what the
// user typed, else DEFAULT_MIN_SCORE, which hides obvious noise for a text model; 0 for a
// collection made with an image model (CLIP), whose text-to-image cosines live much lower, or
// with no model at all (own vectors).
const DEFAULT_MIN_SCORE = 0.15;

function minScore() {
  const typed = $("#min-score").value.trim();
  if (typed !== "") return Math.min(Math.max(parseFloat(typed) || 0, 0), 1);
  const info = state.collections[state.collection];
  const embedder = info && info.embedder ? String(info.embedder) : "";
  return !embedder || /^clip[:\-]/i.test(embedder) ? 0 : DEFAULT_MIN_SCORE;
}

function showMinScoreDefault() {
  $("#min-score").placeholder = "auto: " + minScore();
}

// Search by an image file (chosen or dropped): sent base64-encoded; an image is always
// searched by vector.
async function runImageSearch(ev) {
  const file = ev.target.files && ev.target.files[0];
  if (file) await searchByImageFile(file);
  ev.target.value = "";  // choosing the same file again searches again
}

async function searchByImageFile(file) {
  await guarded(async () => {
    if (file.type && !file.type.startsWith("image/")) {  // no type: let the server judge the bytes
      throw new Error(file.name + " is not an image; choose a JPEG, PNG, WebP or GIF file");
    }
    const dataUrl = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new Error("cannot read " + file.name));
      reader.readAsDataURL(file);
    });
    const preview = $("#image-preview");
    preview.src = dataUrl;
    preview.hidden = false;
    const body = { image: dataUrl, mode: "vector", k: parseInt($("#k").value, 10) || 10 };
    const where = $("#where").value.trim();
    if (where) {
      try { body.where = JSON.parse(where); } catch (e) { throw new Error("the filter is not valid JSON: " + e.message); }
    }
    await searchAndShow(body, "");
  });
}

function setupDrop() {
  const zone = $("#page-search");
  zone.addEventListener("dragover", (ev) => {
    if (!ev.dataTransfer || ![...ev.dataTransfer.types].includes("Files")) return;
    ev.preventDefault();  // allows the drop
    zone.classList.add("dropping");
  });
  zone.addEventListener("dragleave", (ev) => { if (ev.target === zone) zone.classList.remove("dropping"); });
  zone.addEventListener("drop", (ev) => {
    zone.classList.remove("dropping");
    const file = ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0];
    if (!file) return;
    ev.preventDefault();  // the browser would otherwise open the file
    searchByImageFile(file);
  });
}

// A thumbnail stored by `semkit index --clip` (a data: URI), never a remote URL.
const thumbnailOf = (h) => {
  const t = h.metadata && h.metadata.thumbnail;
  return typeof t === "string" && /^data:image\/(jpeg|png|webp|gif);base64,/.test(t) ? t : null;
};

// What `semkit index --clip` records about an image, shown as one short line instead of JSON.
function imageFacts(meta) {
  const facts = [];
  if (meta.width && meta.height) facts.push(meta.width + " × " + meta.height);
  if (meta.format) facts.push(meta.format);
  if (meta.bytes) facts.push(fmtBytes(meta.bytes));
  return facts.join(" · ");
}

// --- what a result row shows -----------------------------------------------------------------

// Metadata keys kept out of a result row (they stay in the raw JSON behind "details"), each with
// why. Most are what `semkit index` writes for its own bookkeeping (ingest/plan.py for documents,
// ingest/images.py for images): a reader of the results has no use for them, and some are private.
const HIDDEN_FIELDS = {
  path: "the absolute path on the machine that indexed the file: private, and useless elsewhere",
  root: "the absolute folder that was indexed (same reason)",
  file_hash: "the file's content hash, used to skip unchanged files on re-indexing",
  sha256: "an image's content hash (same use)",
  sha: "a content hash", hash: "a content hash", text_hash: "a content hash",
  mtime: "modification time, used to notice changed files",
  size: "the file's size in bytes, used to notice changed files",
  settings: "the chunking settings the chunk was made with, used to re-chunk when they change",
  start: "the chunk's character offset in the file", end: "the chunk's character offset in the file",
  tokens: "the chunk's length in model tokens",
  chunk: "the chunk's number within its file", chunks: "how many chunks the file was cut into",
  thumbnail: "an image's picture, shown as the picture",
  // Shown in their own places in the row, not repeated in the metadata line:
  title: "the row's title", name: "the row's title", heading: "the row's title",
  section: "the row's section path", headings: "the row's section path",
  source: "the row's source", url: "the row's source link",
};

const ABSOLUTE_PATH = /^(\/|~\/|[A-Za-z]:[\\/]|\\\\|file:)/;  // POSIX, home, Windows drive, UNC, file URL
const HASH_LIKE = /[0-9a-f]{32,}/i;  // an MD5/SHA digest or similar: noise to a reader
const baseName = (p) => String(p).split(/[\\/]/).filter(Boolean).pop() || String(p);
const short = (v, n) => (v.length > n ? v.slice(0, n - 1) + "…" : v);

// A value fit for the metadata line, or null to leave it to "details": absolute paths and
// hashes are never shown (whatever the key: a user's own metadata can hold them too); nested
// objects are too long for one line; lists of plain values are joined.
function displayValue(value) {
  if (value === null || value === undefined || value === "") return null;
  if (Array.isArray(value)) {
    const parts = value.map(displayValue);
    return parts.length && parts.every((x) => x !== null && !x.includes(", ")) ? short(parts.join(", "), 80) : null;
  }
  if (typeof value === "object") return null;
  const text = String(value);
  if (typeof value === "string" && (ABSOLUTE_PATH.test(text) || HASH_LIKE.test(text))) return null;
  return short(text, 60);
}

// What one result shows, from its metadata: title, section path, source (label and, for an
// http(s) URL, a link) and the user-facing metadata as [key, value] pairs. Keys starting with "_"
// or "semkit" are semkit-internal.
function resultView(hit) {
  const meta = hit.metadata || {};
  const str = (v) => (typeof v === "string" && v.trim() && !ABSOLUTE_PATH.test(v) ? v.trim() : "");
  const url = typeof meta.url === "string" && /^https?:\/\//i.test(meta.url) ? meta.url : "";
  // Image ids are absolute file paths: their file name only; an id that is a hash: its first 8 digits.
  const idLabel = ABSOLUTE_PATH.test(hit.id) ? baseName(hit.id)
    : HASH_LIKE.test(hit.id) ? hit.id.slice(0, 8) + "…" : hit.id;
  const source = str(meta.source) || (meta.path ? baseName(meta.path) : "") ||
                 (typeof meta.source === "string" && meta.source ? baseName(meta.source) : "");
  const fileName = source ? baseName(source) : "";
  const title = str(meta.title) || str(meta.name) || str(meta.heading) || fileName || idLabel;
  const section = str(meta.section) ||
    (Array.isArray(meta.headings) ? meta.headings.filter((x) => typeof x === "string" && x).join(" > ") : "");
  const facts = [];
  for (const [key, value] of Object.entries(meta)) {
    if (Object.hasOwn(HIDDEN_FIELDS, key) || key.startsWith("_") || key.toLowerCase().startsWith("semkit")) continue;
    const shown = displayValue(value);
    if (shown !== null) facts.push([key, shown]);
  }
  return { title, section, source: source || (url ? "" : idLabel), url, facts };
}

// The stored metadata as JSON for "details"; a thumbnail is shortened (it is the picture shown).
function rawMetadata(hit) {
  const meta = Object.assign({}, hit.metadata || {});
  if (typeof meta.thumbnail === "string") meta.thumbnail = meta.thumbnail.slice(0, 30) + "… (the picture shown)";
  return JSON.stringify(meta, null, 2);
}

function sourceNode(view) {
  if (!view.url) return el("span", { class: "hit-source" }, view.source);
  return el("a", { class: "hit-source", href: view.url, target: "_blank", rel: "noopener noreferrer",
                   onclick: (ev) => ev.stopPropagation() }, view.source || short(view.url, 80));
}

// The raw metadata on demand, inside the row; clicks there do not open the side panel.
const detailsNode = (hit) => el("details", { class: "raw", onclick: (ev) => ev.stopPropagation() },
  el("summary", {}, "details"), el("pre", { class: "raw-json" }, rawMetadata(hit)));

async function searchAndShow(body, query) {
  status("searching…");
  const t0 = performance.now();
  const res = await api("POST", colPath("/search"), body);
  const list = $("#results");
  list.replaceChildren();
  // Only images (a photo collection): a grid of pictures; texts or a mix: rows.
  list.classList.toggle("grid", res.hits.length > 0 && res.hits.every((h) => thumbnailOf(h)));
  for (const h of res.hits) {
    const text = h.snippet || h.text || "";
    const spans = h.highlights && h.highlights.length ? h.highlights : termSpans(text, query);
    const thumb = thumbnailOf(h);
    const view = resultView(h);
    const facts = thumb ? imageFacts(h.metadata || {})
      : view.facts.map(([k, v]) => k + ": " + v).join(" · ");
    const item = el("li", { "data-id": h.id, class: thumb ? "with-thumb" : "", onclick: () => openRecord(h.id) });
    if (thumb) item.append(el("img", { class: "thumb", src: thumb, alt: view.title }));
    const where = el("div", { class: "hit-where" });
    if (view.section) where.append(el("span", { class: "hit-section" }, view.section));
    if ((view.source && view.source !== view.title) || view.url) where.append(sourceNode(view));
    item.append(el("div", { class: "hit-body" },
      el("div", { class: "hit-head" }, el("span", { class: "hit-id hit-title" }, view.title),
         el("span", { class: "score", title: "relevance in [0, 1]" }, h.score.toFixed(3))),
      where.childNodes.length ? where : "",
      text ? el("p", { class: "snippet" }, marked(text, spans)) : "",
      facts ? el("div", { class: "meta" }, facts) : "",
      detailsNode(h)));
    list.append(item);
  }
  const cut = body.min_score ? " scoring " + body.min_score + " or more" : "";
  const warnings = (res.warnings || []).map((w) => " — warning: " + w).join("");
  const reranked = res.reranker ? ", reranked by " + res.reranker : "";
  status(res.hits.length + " result(s)" + cut + ", " + res.mode + reranked + (body.image ? " (by image)" : "") + ", " +
         Math.round(performance.now() - t0) + " ms" + warnings);
}

// --- duplicates -----------------------------------------------------------------------------

async function runDedup(ev) {
  ev.preventDefault();
  await guarded(async () => {
    const rep = await job(colPath("/dedup"), { threshold: parseFloat($("#threshold").value), keep: $("#keep").value });
    $("#dedup-summary").textContent = rep.groups.length + " group(s) among " + rep.items + " items (" +
      rep.exact_duplicates + " exact duplicates, " + rep.near_pairs + " near pairs ≥ " + rep.threshold + ")";
    const box = $("#groups");
    box.replaceChildren();
    const thumbs = await groupThumbnails(rep.groups);
    const idCell = (id) => (thumbs.has(id)
      ? el("td", {}, el("img", { class: "thumb-small", src: thumbs.get(id), alt: "" }), id) : el("td", {}, id));
    rep.groups.forEach((g, n) => {
      const rows = [el("tr", { class: "keeper" }, el("td", { class: "role" }, "keep"), idCell(g.keeper),
        el("td", { class: "num" }, "—"), el("td", {}, g.keeper_text || ""))];
      for (const m of g.members) {
        rows.push(el("tr", {}, el("td", { class: "role" }, m.exact ? "exact" : "near"), idCell(m.id),
          el("td", { class: "num" }, m.score.toFixed(4)), el("td", {}, m.text || "")));
      }
      const pairs = (g.pairs || []).map((p) => p.a + " ~ " + p.b + " " + p.score.toFixed(3)).join(" · ");
      box.append(el("div", { class: "group" }, el("strong", {}, "Group " + (n + 1)), el("table", {}, ...rows),
        el("div", { class: "pairs" }, "pairs: " + pairs)));
    });
    status("");
  });
}

// Near-duplicate photos are judged by eye: fetch the groups' records for their thumbnails
// (texts come with the report). A failure only leaves the pictures out.
async function groupThumbnails(groups) {
  const ids = [...new Set(groups.flatMap((g) => [g.keeper, ...g.members.map((m) => m.id)]))];
  const out = new Map();
  if (!ids.length || ids.length > 2000) return out;
  try {
    for (const r of await api("POST", colPath("/get"), { ids })) {
      const t = thumbnailOf(r);
      if (t) out.set(r.id, t);
    }
  } catch (e) { /* no pictures */ }
  return out;
}

// --- map ------------------------------------------------------------------------------------

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  "#bcbd22", "#393b79", "#ad494a", "#637939", "#7b4173", "#3182bd", "#e6550d", "#31a354"];
const colour = (c) => (c < 0 ? "#bbb" : PALETTE[c % PALETTE.length]);

async function runCluster(ev) {
  ev.preventDefault();
  await guarded(async () => {
    const body = { method: $("#cluster-method").value, items: true };
    const k = parseInt($("#cluster-k").value, 10);
    if (k && body.method === "kmeans") body.k = k;
    const rep = await job(colPath("/cluster"), body);
    const xs = rep.items.map((i) => i.x), ys = rep.items.map((i) => i.y);
    const bounds = { x0: Math.min(...xs), x1: Math.max(...xs), y0: Math.min(...ys), y1: Math.max(...ys) };
    state.map = { rep, bounds, zoom: 1, panX: 0, panY: 0, focus: null, drawn: 0 };
    const legend = $("#legend");
    legend.replaceChildren();
    for (const c of rep.clusters) {
      legend.append(el("li", { onclick: () => { state.map.focus = state.map.focus === c.id ? null : c.id; drawMap(); } },
        el("span", { class: "swatch", style: "background:" + colour(c.id) }), c.label + " (" + c.size + ")"));
    }
    drawMap();
    status(rep.k + " cluster(s), " + rep.items.length + " points");
  });
}

function toScreen(m, x, y, canvas) {
  const pad = 30, w = canvas.width - 2 * pad, h = canvas.height - 2 * pad;
  const sx = pad + (x - m.bounds.x0) / ((m.bounds.x1 - m.bounds.x0) || 1) * w;
  const sy = pad + (1 - (y - m.bounds.y0) / ((m.bounds.y1 - m.bounds.y0) || 1)) * h;
  const cx = canvas.width / 2, cy = canvas.height / 2;
  return [cx + (sx - cx) * m.zoom + m.panX, cy + (sy - cy) * m.zoom + m.panY];
}

function drawMap() {
  const m = state.map, canvas = $("#map"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!m) return;
  let drawn = 0;
  for (const it of m.rep.items) {
    const [sx, sy] = toScreen(m, it.x, it.y, canvas);
    ctx.globalAlpha = m.focus === null || m.focus === it.cluster ? 0.85 : 0.12;
    ctx.fillStyle = colour(it.cluster);
    ctx.beginPath();
    ctx.arc(sx, sy, 4, 0, 2 * Math.PI);
    ctx.fill();
    drawn += 1;
  }
  ctx.globalAlpha = 1;
  ctx.font = "600 13px system-ui, sans-serif";
  ctx.textAlign = "center";
  for (const c of m.rep.clusters) {
    const members = m.rep.items.filter((i) => i.cluster === c.id);
    if (!members.length) continue;
    const mx = members.reduce((a, i) => a + i.x, 0) / members.length;
    const my = members.reduce((a, i) => a + i.y, 0) / members.length;
    let [sx, sy] = toScreen(m, mx, my, canvas);
    const half = ctx.measureText(c.label).width / 2 + 4;  // keep labels inside the canvas
    sx = Math.min(Math.max(sx, half), canvas.width - half);
    sy = Math.min(Math.max(sy, 22), canvas.height - 4);
    ctx.lineWidth = 3; ctx.strokeStyle = "#fff"; ctx.strokeText(c.label, sx, sy - 8);
    ctx.fillStyle = "#1d2330"; ctx.fillText(c.label, sx, sy - 8);
  }
  m.drawn = drawn;
  canvas.dataset.points = String(drawn);
}

function nearestPoint(ev) {
  const m = state.map, canvas = $("#map");
  if (!m) return null;
  const r = canvas.getBoundingClientRect();
  const px = (ev.clientX - r.left) * canvas.width / r.width, py = (ev.clientY - r.top) * canvas.height / r.height;
  let best = null, bestD = 64;  // within 8 px
  for (const it of m.rep.items) {
    const [sx, sy] = toScreen(m, it.x, it.y, canvas);
    const d = (sx - px) ** 2 + (sy - py) ** 2;
    if (d < bestD) { bestD = d; best = it; }
  }
  return best;
}

function setupMap() {
  const canvas = $("#map"), tip = $("#tooltip");
  let drag = null;
  canvas.addEventListener("wheel", (ev) => {
    if (!state.map) return;
    ev.preventDefault();
    const f = ev.deltaY < 0 ? 1.2 : 1 / 1.2;
    state.map.zoom *= f; state.map.panX *= f; state.map.panY *= f;
    drawMap();
  }, { passive: false });
  canvas.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, moved: false }; });
  window.addEventListener("mouseup", () => { setTimeout(() => { drag = null; }, 0); });
  canvas.addEventListener("mousemove", (ev) => {
    if (!state.map) return;
    if (drag && (ev.buttons & 1)) {
      state.map.panX += ev.clientX - drag.x; state.map.panY += ev.clientY - drag.y;
      if (Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y) > 0) drag.moved = true;
      drag.x = ev.clientX; drag.y = ev.clientY;
      drawMap();
      return;
    }
    const it = nearestPoint(ev);
    if (!it) { tip.hidden = true; return; }
    const c = state.map.rep.clusters.find((k) => k.id === it.cluster);
    tip.textContent = it.id + " · " + (c ? c.label : "noise") + (it.text ? " — " + it.text : "");
    const r = canvas.getBoundingClientRect();
    tip.style.left = (ev.clientX - r.left + 12) + "px"; tip.style.top = (ev.clientY - r.top + 12) + "px";
    tip.hidden = false;
  });
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  canvas.addEventListener("click", (ev) => {
    if (drag && drag.moved) return;
    const it = nearestPoint(ev);
    if (it) openRecord(it.id);
  });
  canvas.addEventListener("dblclick", () => {
    if (!state.map) return;
    state.map.zoom = 1; state.map.panX = 0; state.map.panY = 0; drawMap();
  });
}

// --- models & cost --------------------------------------------------------------------------

const fmtBytes = (b) => (b >= 1e9 ? (b / 1e9).toFixed(2) + " GB" : b >= 1e6 ? (b / 1e6).toFixed(2) + " MB" : (b / 1e3).toFixed(1) + " kB");

async function loadModels() {
  await guarded(async () => {
    const cat = await api("GET", "/v1/catalog");
    const body = $("#catalog tbody");
    body.replaceChildren();
    const score = (m, task) => { const s = (m.quality || []).find((q) => q.task === task); return s ? s.value.toFixed(2) : ""; };
    for (const m of cat.models) {
      body.append(el("tr", {}, el("td", {}, m.spec), el("td", {}, m.provider), el("td", { class: "num" }, m.dimensions),
        el("td", { class: "num" }, m.max_tokens), el("td", { class: "num" }, m.price_per_million.toFixed(3)),
        el("td", { class: "num" }, score(m, "STSBenchmark")), el("td", { class: "num" }, score(m, "SciFact")),
        el("td", {}, m.served ? "yes" : "")));
    }
    if (!state.collection) return;
    const specs = cat.models.filter((m) => m.served || !m.local).map((m) => m.spec);
    const rep = await api("POST", colPath("/cost"), { models: specs });
    $("#cost-summary").textContent = rep.texts + " texts, " + fmtBytes(rep.text_bytes) + " of text in '" + state.collection + "'";
    const tb = $("#cost-table tbody");
    tb.replaceChildren();
    for (const m of rep.models) {
      tb.append(el("tr", {}, el("td", {}, m.model), el("td", { class: "num" }, m.dimensions),
        el("td", { class: "num" }, m.tokens.toLocaleString() + (m.estimated ? " (est.)" : "")),
        el("td", { class: "num" }, "$" + m.embedding_dollars.toFixed(4)),
        el("td", { class: "num" }, fmtBytes(m.storage_bytes.float32)), el("td", { class: "num" }, fmtBytes(m.storage_bytes.int8)),
        el("td", { class: "num" }, "$" + m.storage_dollars_per_month.float32.toFixed(6))));
    }
  });
}

// --- pages, collections, key ----------------------------------------------------------------

function showPage() {
  const page = (location.hash || "#search").slice(1);
  for (const s of document.querySelectorAll(".page")) s.hidden = s.id !== "page-" + page;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  if (page === "models") loadModels();
}

async function loadCollections() {
  await guarded(async () => {
    const cols = await api("GET", "/v1/collections");
    state.collections = Object.fromEntries(cols.map((c) => [c.name, c]));
    const sel = $("#collection");
    sel.replaceChildren(...cols.map((c) => el("option", { value: c.name }, c.name + " (" + c.count + ")")));
    const saved = localStorage.getItem("semkit-collection");
    state.collection = cols.some((c) => c.name === saved) ? saved : (cols[0] ? cols[0].name : "");
    sel.value = state.collection;
    showMinScoreDefault();
    if (!cols.length) status("no collections yet: create one through the API (POST /v1/collections)");
  });
}

async function init() {
  const health = await (await fetch("/healthz")).json();
  state.auth = health.auth;
  // The Rerank box only when the server was started with a reranker (semkit serve --rerank).
  $("#rerank-box").hidden = !health.rerank;
  if (health.rerank) $("#rerank-box").title += "\nThis server's reranker: " + health.rerank;
  $("#key-box").hidden = !state.auth;
  $("#api-key").value = state.key;
  $("#save-key").addEventListener("click", () => {
    state.key = $("#api-key").value.trim();
    localStorage.setItem("semkit-key", state.key);
    status("");
    loadCollections();
  });
  $("#collection").addEventListener("change", (ev) => {
    state.collection = ev.target.value;
    localStorage.setItem("semkit-collection", state.collection);
    showMinScoreDefault();
    showPage();
  });
  $("#search-form").addEventListener("submit", runSearch);
  $("#image-query").addEventListener("change", runImageSearch);
  setupDrop();
  $("#dedup-form").addEventListener("submit", runDedup);
  $("#map-form").addEventListener("submit", runCluster);
  $("#close-detail").addEventListener("click", () => { $("#detail").hidden = true; });
  setupMap();
  window.addEventListener("hashchange", showPage);
  if (state.auth && !state.key) status("enter an API key (semkit keys create) to begin");
  else await loadCollections();
  showPage();
  document.body.dataset.ready = "1";
}

init();
