"""Interactive 3-D views of 2-D loss surfaces for the HTML report: rotate, zoom, hover values.

Each 2-D surface becomes a ``<canvas>`` whose ``data-surface`` attribute holds its values as
JSON (``null`` where a point was not computed); one small script, inlined once in the page,
draws every such canvas with the 2-D canvas API: the grid's quadrilaterals projected
orthographically after a rotation about the vertical axis (drag left-right) and a tilt (drag
up-down), drawn far to near (the painter's algorithm), coloured by height (viridis). The wheel
zooms, a menu picks the metric (loss or accuracy of each split), and the values of the grid
point nearest the pointer are shown under it. Nothing is fetched: no library, no URL, so the
report stays one offline file.

After drawing, the script records the number of quadrilaterals it drew in the canvas's
``data-quads`` attribute, and any script error in the page's ``data-view3d-error``; the
browser test reads both.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence

import numpy as np

from landscape.plot.results import ResultFile, SurfaceRecord

# The viewer, written for this report (plain ES5, no dependencies).
SCRIPT = r"""
(function () {
  "use strict";
  var VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function colour(t) {
    t = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
    var i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i;
    var a = VIRIDIS[i], b = VIRIDIS[i + 1];
    var rgb = [0, 1, 2].map(function (k) { return Math.round(a[k] + f * (b[k] - a[k])); });
    return "rgb(" + rgb.join(",") + ")";
  }
  function fmt(v) { return v === null ? "not computed" : Number(v).toPrecision(5); }

  function View(canvas) {
    var d = JSON.parse(canvas.getAttribute("data-surface"));
    var figure = canvas.parentNode;
    var menu = figure.querySelector("select");
    var readout = figure.querySelector(".view3d-value");
    var ctx = canvas.getContext("2d");
    var s = { yaw: -0.7, pitch: 0.95, zoom: 1.0, metric: d.metric, drag: null, projected: [] };
    var nx = d.x.length, ny = d.y.length;
    function span(a) { return [Math.min.apply(null, a), Math.max.apply(null, a)]; }
    var sx = span(d.x), sy = span(d.y);

    function draw() {
      var z = d.values[s.metric], lo = Infinity, hi = -Infinity, i, j;
      for (i = 0; i < nx; i++) for (j = 0; j < ny; j++) {
        if (z[i][j] !== null) { lo = Math.min(lo, z[i][j]); hi = Math.max(hi, z[i][j]); }
      }
      var w = canvas.width, h = canvas.height, scale = 0.32 * Math.min(w, h) * s.zoom;
      var cy = Math.cos(s.yaw), sy_ = Math.sin(s.yaw);
      var cp = Math.cos(s.pitch), sp = Math.sin(s.pitch);
      function project(i, j) {
        var u = 2 * (d.x[i] - sx[0]) / ((sx[1] - sx[0]) || 1) - 1;
        var v = 2 * (d.y[j] - sy[0]) / ((sy[1] - sy[0]) || 1) - 1;
        var t = hi > lo ? (z[i][j] - lo) / (hi - lo) : 0.5;
        var a = u * cy - v * sy_, b = u * sy_ + v * cy;  // rotate about the vertical axis
        var up = 1.2 * t - 0.6;
        return { x: w / 2 + scale * a, y: h / 2 - scale * (up * sp - b * cp),
                 depth: b * sp + up * cp, t: t };
      }
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, w, h);
      var quads = [], p = [];
      for (i = 0; i < nx; i++) {
        p.push([]);
        for (j = 0; j < ny; j++) p[i].push(z[i][j] === null ? null : project(i, j));
      }
      for (i = 0; i + 1 < nx; i++) for (j = 0; j + 1 < ny; j++) {
        var c = [p[i][j], p[i + 1][j], p[i + 1][j + 1], p[i][j + 1]];
        if (c.indexOf(null) >= 0) continue;
        quads.push({ c: c, depth: (c[0].depth + c[1].depth + c[2].depth + c[3].depth) / 4,
                     t: (c[0].t + c[1].t + c[2].t + c[3].t) / 4 });
      }
      quads.sort(function (a, b) { return b.depth - a.depth; });  // far first
      quads.forEach(function (q) {
        ctx.beginPath();
        ctx.moveTo(q.c[0].x, q.c[0].y);
        for (var k = 1; k < 4; k++) ctx.lineTo(q.c[k].x, q.c[k].y);
        ctx.closePath();
        ctx.fillStyle = colour(q.t);
        ctx.fill();
        ctx.strokeStyle = "rgba(0,0,0,0.25)";
        ctx.stroke();
      });
      s.projected = p;
      canvas.setAttribute("data-quads", String(quads.length));
      ctx.fillStyle = "#333";
      ctx.font = "12px sans-serif";
      ctx.fillText(s.metric + ": " + fmt(lo) + " .. " + fmt(hi), 8, 16);
    }

    function nearest(mx, my) {
      var best = null, bestD = 100, i, j;  // within 10 px
      for (i = 0; i < nx; i++) for (j = 0; j < ny; j++) {
        var q = s.projected[i] && s.projected[i][j];
        if (!q) continue;
        var dd = (q.x - mx) * (q.x - mx) + (q.y - my) * (q.y - my);
        if (dd < bestD) { bestD = dd; best = [i, j]; }
      }
      return best;
    }
    function position(e) {
      var r = canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * canvas.width / r.width,
              (e.clientY - r.top) * canvas.height / r.height];
    }
    canvas.addEventListener("mousedown", function (e) { s.drag = [e.clientX, e.clientY]; });
    window.addEventListener("mouseup", function () { s.drag = null; });
    canvas.addEventListener("mousemove", function (e) {
      if (s.drag) {
        s.yaw += (e.clientX - s.drag[0]) * 0.01;
        s.pitch = Math.min(1.55, Math.max(0.05, s.pitch + (e.clientY - s.drag[1]) * 0.01));
        s.drag = [e.clientX, e.clientY];
        draw();
        return;
      }
      var m = position(e), hit = nearest(m[0], m[1]);
      if (!hit) { readout.textContent = "\u00a0"; return; }
      var parts = [d.x_label + " = " + fmt(d.x[hit[0]]), d.y_label + " = " + fmt(d.y[hit[1]])];
      Object.keys(d.values).forEach(function (k) {
        parts.push(k + " = " + fmt(d.values[k][hit[0]][hit[1]]));
      });
      readout.textContent = parts.join(", ");
    });
    canvas.addEventListener("wheel", function (e) {
      e.preventDefault();
      s.zoom = Math.min(8, Math.max(0.2, s.zoom * Math.exp(-e.deltaY * 0.001)));
      draw();
    }, { passive: false });
    menu.addEventListener("change", function () { s.metric = menu.value; draw(); });
    draw();
  }

  window.addEventListener("error", function (e) {
    document.documentElement.setAttribute("data-view3d-error", String(e.message));
  });
  var canvases = document.querySelectorAll("canvas.view3d");
  for (var n = 0; n < canvases.length; n++) {
    try { View(canvases[n]); }
    catch (err) {
      document.documentElement.setAttribute("data-view3d-error", String(err));
      throw err;
    }
  }
})();
"""


def _json_values(values: np.ndarray) -> list:
    """Rows of floats, ``None`` (JSON ``null``) where a point was not computed."""
    return [[float(v) if math.isfinite(v) else None for v in row] for row in values.tolist()]


def surface_view(surface: SurfaceRecord, title: str) -> str:
    """The ``<figure>`` of one 2-D surface: metric menu, canvas, value readout."""
    metrics = {k: v for k, v in surface.metrics.items() if np.shape(v) == surface.done.shape}
    first = "train_loss" if "train_loss" in metrics else next(iter(metrics))
    data = {
        "x": [float(v) for v in surface.x],
        "y": [float(v) for v in surface.y],
        "x_label": surface.x_label or "x",
        "y_label": surface.y_label or "y",
        "metric": first,
        "values": {k: _json_values(np.asarray(v, dtype=float)) for k, v in metrics.items()},
    }
    options = "".join(
        f'<option value="{html.escape(k)}"{" selected" if k == first else ""}>'
        f"{html.escape(k)}</option>"
        for k in metrics
    )
    return (
        '<figure class="view3d-figure">'
        f'<div>metric <select aria-label="metric">{options}</select></div>'
        f'<canvas class="view3d" width="560" height="420" '
        f"data-surface='{html.escape(json.dumps(data), quote=True)}'></canvas>"
        '<div class="view3d-value">&nbsp;</div>'
        f"<figcaption>{html.escape(title)} (drag to rotate, wheel to zoom, point at the "
        "surface for its values).</figcaption></figure>"
    )


def views_html(sources: Sequence[object]) -> str:
    """A section with a 3-D view of every 2-D surface of the result files, and the script
    once; empty when there is none."""
    figures = [
        surface_view(s, f"Loss surface of {s.meta.checkpoint_name or s.name} in 3-D")
        for source in sources
        if isinstance(source, ResultFile)
        for s in source.surfaces
        if s.ndim == 2 and s.metrics
    ]
    if not figures:
        return ""
    return (
        "<h2>Loss surfaces in 3-D</h2>\n"
        '<div class="figures">\n' + "\n".join(figures) + "\n</div>\n"
        f"<script>{SCRIPT}</script>"
    )
