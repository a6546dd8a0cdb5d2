"""The HTML report holds names that came from users' data (run, model, class and metadata
names and values, sample ids, URIs, suggestion reasons): none of them may add markup.

Two runs of the same shape are rendered, one whose strings are markup and one whose strings
are plain; their tag structure (tag names and attribute names, in order) must be the same,
and every hostile string must appear in the page as text. Real server, real SDK.
"""
from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pandas as pd

from blindspots.report import write_report

HOSTILE = {"run": 'run"><script>alert(1)</script>', "model": "<img src=x onerror=alert(2)>",
           "classes": ["<b>cat</b>", 'dog" onmouseover="alert(3)'], "column": "<i>site</i>",
           "site": "</td></tr></table><script>alert(4)</script>", "id": "<svg onload=alert(5)>",
           "uri": "javascript:alert(6)//<a href=x>"}
PLAIN = {"run": "run-plain-name-padded", "model": "model-plain-name", "classes": ["cat", "dog"],
         "column": "site", "site": "far-north-camera", "id": "sample-", "uri": "file:///nowhere/"}


class _Structure(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(sorted(name for name, _ in attrs))))

    def handle_data(self, data):
        self.text.append(data)


def _render(client, names: dict, path) -> _Structure:
    rng = np.random.default_rng(0)
    n, dim = 1200, 8
    site = np.where(rng.random(n) < 0.15, names["site"], rng.choice(["a", "b"], n))
    hit = site == names["site"]
    emb = rng.normal(size=(n, dim))
    emb[hit, 0] += 6.0                                  # the failing site is a place in embedding space too
    labels = rng.integers(0, 2, n)
    wrong = np.where(hit, rng.random(n) < 0.7, rng.random(n) < 0.05)
    predicted = np.where(wrong, 1 - labels, labels)
    probs = np.where(predicted[:, None] == np.arange(2), 0.85, 0.15)
    run = client.create_run(names["run"], class_names=names["classes"], embedding_dim=dim,
                            model_name=names["model"], model_version="1")
    ids = [f"{names['id']}{i}" for i in range(n)]
    run.log_predictions(ids, emb, labels=labels, probabilities=probs, progress=False,
                        metadata=pd.DataFrame({names["column"]: site}), uris=[f"{names['uri']}{i}" for i in range(n)])
    diagnosis = run.diagnose(progress=False)
    pool = client.create_pool("pool", embedding_dim=dim, num_classes=2)
    m = 600
    pool_emb = rng.normal(size=(m, dim))
    pool_emb[: m // 4, 0] += 6.0
    pool.add([f"{names['id']}p{i}" for i in range(m)], pool_emb, probabilities=np.full((m, 2), 0.5), progress=False,
             metadata=pd.DataFrame({names["column"]: np.where(np.arange(m) < m // 4, names["site"], "a")}),
             uris=[f"{names['uri']}p{i}" for i in range(m)])
    picks = run.suggest(pool, budget=30, progress=False)
    write_report(client, run.id, path, picks, max_thumbnails=3)
    parsed = _Structure()
    parsed.feed(path.read_text(encoding="utf-8"))
    assert diagnosis.message.regions, "the failing site is a region"
    assert any(names["site"] in s.name for s in diagnosis.message.slices), "and a slice naming the value"
    return parsed


def test_names_from_the_data_never_become_markup(client, tmp_path):
    hostile = _render(client, HOSTILE, tmp_path / "hostile.html")
    plain = _render(client, PLAIN, tmp_path / "plain.html")
    assert [t for t, _ in hostile.tags].count("script") == [t for t, _ in plain.tags].count("script")
    assert not any("onerror" in attrs or "onload" in attrs or "onmouseover" in attrs for _, attrs in hostile.tags)
    assert hostile.tags == plain.tags
    text = "".join(hostile.text)
    for value in (HOSTILE["run"], HOSTILE["model"], HOSTILE["site"], *HOSTILE["classes"]):
        assert value in text, value
