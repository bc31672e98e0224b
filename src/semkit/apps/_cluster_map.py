"""A self-contained interactive HTML map of a ``ClusterReport``.

One file, no CDN and no external files: a ``<canvas>`` scatter plot drawn by a small inline
script, with the data inlined as JSON. Points are coloured by cluster (noise in grey), cluster
labels sit at their centres, hovering shows the item's id, cluster and text; the wheel zooms,
dragging pans, double-click resets, clicking a cluster in the legend highlights it. Canvas
rather than SVG so 50k points stay responsive; above ``max_points`` a random sample is drawn
(the page says so).
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInput
from ._cluster import NOISE, ClusterReport
from ._io import atomic_write


def render_cluster_map(report: ClusterReport, *, title: str = "semkit cluster map", max_points: int = 50_000,
                hover_chars: int = 200, seed: int = 0) -> str:
    """The page as a string (``write_cluster_map`` writes it atomically)."""
    if max_points <= 0:
        raise InvalidInput(f"max_points must be positive, got {max_points!r}")
    n = len(report.ids)
    rows = np.arange(n)
    if n > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
    coords = np.asarray(report.coords, dtype=np.float64)
    texts = report.texts or [None] * n
    centres = []
    for c in report.clusters:
        members = coords[report.labels == c.id]
        cx, cy = (np.median(members, axis=0).tolist() if len(members) else (0.0, 0.0))
        centres.append({"id": c.id, "label": c.label, "size": c.size, "keywords": c.keywords[:8],
                        "x": round(cx, 5), "y": round(cy, 5)})
    data: dict[str, Any] = {
        "x": [round(float(v), 5) for v in coords[rows, 0]],
        "y": [round(float(v), 5) for v in coords[rows, 1]],
        "c": [int(v) for v in report.labels[rows]],
        "id": [report.ids[i] for i in rows.tolist()],
        "t": [_clip(texts[i], hover_chars) for i in rows.tolist()],
        "clusters": centres,
        "noise": NOISE,
        "shown": len(rows),
        "total": n,
        "method": report.method,
    }
    # "<" is escaped so no text can close the script element or open a comment
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return _PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)


def write_cluster_map(report: ClusterReport, path: str | os.PathLike[str], **options: Any) -> Path:
    """Write the map to ``path`` (one self-contained HTML file) and return the path."""
    return atomic_write(path, render_cluster_map(report, **options))


def _clip(text: str | None, limit: int) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  html, body { margin: 0; height: 100%; font: 13px/1.4 system-ui, sans-serif; color: #222; }
  #wrap { display: flex; height: 100%; }
  #plot { flex: 1; position: relative; background: #fbfbfb; }
  canvas { display: block; width: 100%; height: 100%; cursor: grab; }
  canvas.dragging { cursor: grabbing; }
  #side { width: 300px; overflow-y: auto; border-left: 1px solid #ddd; padding: 8px 10px; }
  #side h1 { font-size: 15px; margin: 4px 0 2px; }
  #meta { color: #666; margin-bottom: 8px; }
  .cl { display: flex; gap: 6px; align-items: baseline; padding: 3px 4px; border-radius: 4px; cursor: pointer; }
  .cl:hover { background: #eee; } .cl.on { background: #dde8ff; }
  .sw { width: 10px; height: 10px; border-radius: 50%; flex: none; }
  .sz { color: #888; margin-left: auto; }
  #tip { position: absolute; pointer-events: none; max-width: 360px; background: rgba(255,255,255,.96);
         border: 1px solid #bbb; border-radius: 4px; padding: 5px 7px; box-shadow: 0 1px 4px rgba(0,0,0,.15);
         display: none; white-space: normal; }
  #help { position: absolute; left: 8px; bottom: 6px; color: #888; font-size: 12px; }
</style>
</head>
<body>
<div id="wrap">
  <div id="plot"><canvas id="cv"></canvas><div id="tip"></div>
    <div id="help">wheel: zoom · drag: pan · double-click: reset · click a cluster to highlight it</div></div>
  <div id="side"><h1>__TITLE__</h1><div id="meta"></div><div id="legend"></div></div>
</div>
<script type="application/json" id="data">__DATA__</script>
<script>
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("data").textContent);
  var N = D.x.length, cv = document.getElementById("cv"), ctx = cv.getContext("2d");
  var tip = document.getElementById("tip"), plot = document.getElementById("plot");
  function colour(c) {
    if (c === D.noise) return "rgba(150,150,150,0.45)";
    var h = ((c * 137.508) % 360).toFixed(1);
    return "hsl(" + h + "," + (c % 2 ? "62%" : "75%") + "," + (c % 3 ? "45%" : "38%") + ")";
  }
  var byId = {}; D.clusters.forEach(function (c) { byId[c.id] = c; });
  var minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (var i = 0; i < N; i++) {
    if (D.x[i] < minX) minX = D.x[i]; if (D.x[i] > maxX) maxX = D.x[i];
    if (D.y[i] < minY) minY = D.y[i]; if (D.y[i] > maxY) maxY = D.y[i];
  }
  if (!N) { minX = minY = -1; maxX = maxY = 1; }
  var view = { s: 1, ox: 0, oy: 0 }, W = 0, H = 0, dpr = window.devicePixelRatio || 1, focus = null, hover = -1;
  function reset() {
    var sx = W / Math.max(maxX - minX, 1e-9), sy = H / Math.max(maxY - minY, 1e-9);
    view.s = 0.92 * Math.min(sx, sy);
    view.ox = W / 2 - view.s * (minX + maxX) / 2; view.oy = H / 2 + view.s * (minY + maxY) / 2;
  }
  function sx(x) { return view.ox + view.s * x; }
  function sy(y) { return view.oy - view.s * y; }
  function resize() {
    var r = plot.getBoundingClientRect(); W = r.width; H = r.height;
    cv.width = W * dpr; cv.height = H * dpr; ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  }
  var pending = false;
  function draw() {
    if (pending) return; pending = true;
    window.requestAnimationFrame(function () {
      pending = false;
      ctx.clearRect(0, 0, W, H);
      var rad = N > 20000 ? 1.6 : N > 5000 ? 2.2 : 3;
      for (var pass = 0; pass < 2; pass++) {
        for (var i = 0; i < N; i++) {
          var on = focus === null || D.c[i] === focus;
          if ((pass === 0) === on) continue;
          ctx.globalAlpha = on ? 0.85 : 0.12;
          ctx.fillStyle = colour(D.c[i]);
          ctx.fillRect(sx(D.x[i]) - rad, sy(D.y[i]) - rad, 2 * rad, 2 * rad);
        }
      }
      ctx.globalAlpha = 1;
      if (hover >= 0) {
        ctx.strokeStyle = "#000"; ctx.lineWidth = 1.5; ctx.beginPath();
        ctx.arc(sx(D.x[hover]), sy(D.y[hover]), rad + 3, 0, 2 * Math.PI); ctx.stroke();
      }
      ctx.font = "bold 12px system-ui, sans-serif"; ctx.textAlign = "center"; ctx.lineJoin = "round";
      var shown = D.clusters.slice(0, 60);
      shown.forEach(function (c) {
        if (focus !== null && c.id !== focus) return;
        var x = sx(c.x), y = sy(c.y);
        ctx.lineWidth = 3.5; ctx.strokeStyle = "rgba(255,255,255,0.9)"; ctx.strokeText(c.label, x, y);
        ctx.fillStyle = "#111"; ctx.fillText(c.label, x, y);
      });
    });
  }
  function nearest(mx, my) {
    var best = -1, bd = 64;
    for (var i = 0; i < N; i++) {
      if (focus !== null && D.c[i] !== focus) continue;
      var dx = sx(D.x[i]) - mx, dy = sy(D.y[i]) - my, d = dx * dx + dy * dy;
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  }
  function text(s) { var e = document.createElement("span"); e.textContent = s; return e; }
  function showTip(i, mx, my) {
    tip.innerHTML = "";
    var c = byId[D.c[i]], head = document.createElement("b");
    head.textContent = D.id[i]; tip.appendChild(head);
    tip.appendChild(text(" · " + (D.c[i] === D.noise ? "noise" : "cluster " + D.c[i] + (c ? ": " + c.label : ""))));
    if (D.t[i]) { tip.appendChild(document.createElement("br")); tip.appendChild(text(D.t[i])); }
    tip.style.display = "block";
    var left = Math.min(mx + 14, W - tip.offsetWidth - 4), top = Math.min(my + 14, H - tip.offsetHeight - 4);
    tip.style.left = Math.max(left, 0) + "px"; tip.style.top = Math.max(top, 0) + "px";
  }
  var drag = null;
  cv.addEventListener("mousedown", function (e) {
    drag = { x: e.clientX, y: e.clientY, ox: view.ox, oy: view.oy }; cv.classList.add("dragging");
  });
  window.addEventListener("mouseup", function () { drag = null; cv.classList.remove("dragging"); });
  cv.addEventListener("mousemove", function (e) {
    var r = cv.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
    if (drag) {
      view.ox = drag.ox + e.clientX - drag.x; view.oy = drag.oy + e.clientY - drag.y;
      tip.style.display = "none"; draw(); return;
    }
    var i = nearest(mx, my);
    if (i !== hover) { hover = i; draw(); }
    if (i >= 0) showTip(i, mx, my); else tip.style.display = "none";
  });
  cv.addEventListener("mouseleave", function () { hover = -1; tip.style.display = "none"; draw(); });
  cv.addEventListener("wheel", function (e) {
    e.preventDefault();
    var r = cv.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
    var f = Math.exp(-e.deltaY * 0.0015);
    view.ox = mx - (mx - view.ox) * f; view.oy = my - (my - view.oy) * f; view.s *= f; draw();
  }, { passive: false });
  cv.addEventListener("dblclick", function () { reset(); draw(); });
  var legend = document.getElementById("legend");
  D.clusters.forEach(function (c) {
    var row = document.createElement("div"); row.className = "cl";
    var sw = document.createElement("span"); sw.className = "sw"; sw.style.background = colour(c.id);
    var name = text(c.id + ": " + (c.keywords.length ? c.keywords.slice(0, 4).join(", ") : c.label));
    var size = text(String(c.size)); size.className = "sz";
    row.appendChild(sw); row.appendChild(name); row.appendChild(size);
    row.addEventListener("click", function () {
      focus = focus === c.id ? null : c.id;
      Array.prototype.forEach.call(legend.children, function (el) { el.classList.remove("on"); });
      if (focus !== null) row.classList.add("on");
      draw();
    });
    legend.appendChild(row);
  });
  var noise = 0; for (var j = 0; j < N; j++) if (D.c[j] === D.noise) noise++;
  document.getElementById("meta").textContent = D.method + " · " + D.clusters.length + " clusters · " +
    (D.shown < D.total ? D.shown + " of " + D.total + " items shown (random sample)" : D.total + " items") +
    (noise ? " · " + noise + " noise shown in grey" : "");
  window.addEventListener("resize", function () { resize(); reset(); draw(); });
  resize(); reset(); draw();
})();
</script>
</body>
</html>
"""


__all__ = ["render_cluster_map", "write_cluster_map"]
