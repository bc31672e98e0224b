"""Clustering: planted clusters, c-TF-IDF keywords, HDBSCAN noise, the self-contained HTML map."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from semkit import apps
from semkit.apps import _cluster_map as cluster_map
from semkit.apps._cluster import ctfidf
from semkit.errors import InvalidInput

D = 24
TOPICS = [
    ("apple banana fruit", "fruit salad with apple", "ripe banana fruit bowl"),
    ("car engine repair", "engine oil for the car", "car wheel and engine"),
    ("python code review", "debugging python code", "code style in python"),
    ("river lake water", "boat on the lake water", "clean river water"),
]


def _planted(per: int = 60, noise: int = 0, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = np.eye(D)[:4] * 3.0
    x = [c + 0.35 * rng.normal(size=(per, D)) for c in centres]
    truth = [np.full(per, i) for i in range(4)]
    texts = [TOPICS[i][j % 3] + f" note {j}" for i in range(4) for j in range(per)]
    if noise:
        x.append(rng.uniform(-3, 3, size=(noise, D)))
        truth.append(np.full(noise, -1))
        texts += [f"misc {j}" for j in range(noise)]
    vectors = np.vstack(x).astype(np.float32)
    return apps.from_matrix(vectors, texts=texts), np.concatenate(truth)


def test_kmeans_recovers_planted_clusters_with_keywords_and_representatives() -> None:
    src, truth = _planted()
    report = apps.cluster(src, k=4)
    assert report.k == 4 and report.noise == 0
    assert adjusted_rand_score(truth, report.labels) == 1.0
    topic_words = {"fruit", "engine", "python", "water"}
    for c in report.clusters:
        assert c.size == 60
        assert set(c.keywords[:3]) & topic_words, c.keywords
        assert "the" not in c.keywords and "with" not in c.keywords  # English stop words
        assert all(report.labels[src.ids.index(r)] == c.id for r in c.representatives)
        assert len(c.representatives) == 3 and 0 < c.cohesion <= 1
    assert report.coords.shape == (len(src), 2)
    assert report.params["projection"] in ("pca", "umap")


def test_k_is_chosen_by_silhouette_when_not_given() -> None:
    src, _ = _planted(per=40)
    report = apps.cluster(src)
    assert report.k == 4 and report.params["k_chosen_by"] == "silhouette"
    assert report.silhouette is not None and report.silhouette > 0.5


def test_hdbscan_reports_noise_as_minus_one() -> None:
    src, truth = _planted(per=60, noise=30)
    report = apps.cluster(src, method="hdbscan", min_cluster_size=10)
    assert report.k == 4
    clustered = truth >= 0
    assert adjusted_rand_score(truth[clustered], report.labels[clustered]) > 0.95
    assert report.noise == int((report.labels == -1).sum()) > 0
    assert (report.labels[~clustered] == -1).mean() > 0.8  # the scattered points are noise
    assert all(c.id >= 0 for c in report.clusters)


def test_hdbscan_above_max_fit_assigns_the_rest_by_nearest_sampled_item() -> None:
    src, truth = _planted(per=150)
    report = apps.cluster(src, method="hdbscan", min_cluster_size=20, max_fit=200)
    assert "sample200" in report.params["reduced_with"]
    assert adjusted_rand_score(truth, report.labels) > 0.95


def test_ctfidf_prefers_terms_distinctive_of_a_class() -> None:
    texts = ["shared word alpha"] * 5 + ["shared word beta"] * 5
    labels = np.array([0] * 5 + [1] * 5)
    kw = ctfidf(texts, labels, top=10)
    assert kw[0][0][0] in ("alpha", "word alpha") and kw[1][0][0] in ("beta", "word beta")
    assert dict(kw[0])["alpha"] > dict(kw[0])["shared"]


def test_map_is_self_contained_and_escapes_texts(tmp_path) -> None:
    src, _ = _planted(per=20)
    src.texts[0] = '</script><script>alert("x")</script> & <b>bold</b>'
    report = apps.cluster(src, k=4)
    page = cluster_map.write_cluster_map(report, tmp_path / "map.html", title="Topics <&>").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page.lower() and not re.search(r"<script[^>]*\bsrc=", page, re.I)
    assert "@import" not in page and "url(" not in page
    assert '</script><script>alert' not in page
    assert "Topics &lt;&amp;&gt;" in page
    data = json.loads(page.split('<script type="application/json" id="data">')[1].split("</script>")[0])
    assert data["shown"] == data["total"] == len(src)
    assert data["t"][0].startswith('</script><script>alert')  # intact after JSON decoding
    assert sorted(c["id"] for c in data["clusters"]) == [0, 1, 2, 3]


def test_map_samples_above_max_points() -> None:
    src, _ = _planted(per=30)
    report = apps.cluster(src, k=4)
    page = cluster_map.render_cluster_map(report, max_points=50)
    data = json.loads(page.split('id="data">')[1].split("</script>")[0])
    assert data["shown"] == 50 and data["total"] == 120 and len(data["x"]) == 50


def test_bad_input_is_a_clear_error() -> None:
    src, _ = _planted(per=10)
    with pytest.raises(InvalidInput, match="method"):
        apps.cluster(src, method="spectral")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="drop k"):
        apps.cluster(src, method="hdbscan", k=3)
    with pytest.raises(InvalidInput, match="more than"):
        apps.cluster(src, k=1000)
    with pytest.raises(InvalidInput, match="k must be a positive"):
        apps.cluster(src, k=0)
    with pytest.raises(InvalidInput, match="no items"):
        apps.cluster(np.zeros((0, D), dtype=np.float32))


_DOM_STUB = r"""
const handlers = {}; let rects = 0; const texts = [];
function el(id) {
  return { id, style: {}, children: [], textContent: "", innerHTML: "", offsetWidth: 100, offsetHeight: 40,
    classList: { add() {}, remove() {} },
    addEventListener(type, fn) { handlers[id + ":" + type] = fn; },
    appendChild(c) { this.children.push(c); return c; },
    getBoundingClientRect() { return { left: 0, top: 0, width: 800, height: 600 }; },
    getContext() { return ctx; } };
}
const ctx = { setTransform() {}, clearRect() {}, fillRect() { rects++; }, beginPath() {}, arc() {}, stroke() {},
  strokeText() {}, fillText(t) { texts.push(t); } };
const nodes = { data: { textContent: DATA }, cv: el("cv"), tip: el("tip"), plot: el("plot"), legend: el("legend"),
  meta: el("meta") };
global.document = { getElementById: (id) => nodes[id], createElement: (t) => el(t) };
global.window = { devicePixelRatio: 1, requestAnimationFrame: (f) => f(), addEventListener() {} };
"""


def test_map_script_runs_draws_every_point_and_shows_hover_text(tmp_path) -> None:
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: cannot execute the map's script")
    src, _ = _planted(per=20)
    report = apps.cluster(src, k=4)
    page = cluster_map.render_cluster_map(report)
    data = page.split('<script type="application/json" id="data">')[1].split("</script>")[0]
    script = page.split("<script>")[1].split("</script>")[0]
    first = json.loads(data)
    harness = (
        f"const DATA = {json.dumps(data)};\n{_DOM_STUB}\n{script}\n"
        # hover exactly over the first point: fit-to-view maps data to the 800x600 canvas
        "const before = rects;\n"
        "handlers['cv:mousemove']({clientX: XPOS, clientY: YPOS});\n"
        "console.log(JSON.stringify({first: before, tip: nodes.tip.style.display, texts,"
        " tipText: nodes.tip.children.map(c => c.textContent).join('|'), legend: nodes.legend.children.length}));\n"
    )
    xs, ys = np.asarray(first["x"]), np.asarray(first["y"])
    scale = 0.92 * min(800 / (xs.max() - xs.min()), 600 / (ys.max() - ys.min()))
    xpos = 400 + scale * (xs[0] - (xs.min() + xs.max()) / 2)
    ypos = 300 - scale * (ys[0] - (ys.min() + ys.max()) / 2)
    harness = harness.replace("XPOS", f"{xpos:.3f}").replace("YPOS", f"{ypos:.3f}")
    (tmp_path / "h.js").write_text(harness, encoding="utf-8")
    out = subprocess.run([node, str(tmp_path / "h.js")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["first"] == len(src)  # one square per point on the first draw
    assert result["legend"] == 4 and len(result["texts"]) >= 4  # cluster labels drawn
    assert result["tip"] == "block" and src.texts[0][:20] in result["tipText"]
