"""How a notebook shows a Diagnosis or a Comparison (``_repr_html_``): read back with an HTML parser,
the tables hold the regions, slices and regressions in the order of the message and of the frames, and
names from the data are text, never markup."""
from __future__ import annotations

from html.parser import HTMLParser

from blindspots.comparison import Comparison
from blindspots.results import Diagnosis
from blindspots.v1 import blindspots_pb2 as pb


class Tables(HTMLParser):
    """The tables' body rows as lists of cell texts, the tags met, and the text outside tables."""

    def __init__(self, markup: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._row, self._cell, self._body = None, None, False
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tbody":
            self._body = True
        elif tag == "tr" and self._body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag == "tbody":
            self._body = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        elif not self.tables or not self._body:
            self.text.append(data)


def test_a_diagnosis_shows_its_regions_slices_and_comparison_as_html(two_versions):
    v1, v2 = two_versions
    shown = Tables(v2._repr_html_())
    regions, slices, classes = shown.tables
    assert len(regions) == min(20, len(v2.regions)) > 0
    assert [int(row[0]) for row in regions] == [r.id for r in v2.regions[:20]]
    first = v2.regions[0]
    assert regions[0][3] == str(first.failures) and regions[0][10] == (first.explanations[0].name
                                                                         if first.explanations else "")
    assert len(slices) == min(10, len(v2.slices)) > 0
    assert [row[0] for row in slices] == [s.name for s in v2.slices[:10]]
    assert [row[0] for row in classes] == v2.classes_frame()["class"].head(10).tolist() and len(classes) > 0
    text = " ".join(shown.text)
    assert f"diagnosis {v2.id} of run {v2.run_id}" in text
    worse = v2.previous_version.regressions()
    assert "Against the previous version v1" in text and f"{len(worse)} finding(s) significantly worse" in text
    assert "previous version" not in " ".join(Tables(v1._repr_html_()).text)       # v1 had none


def test_names_from_the_data_are_text_not_markup():
    message = pb.Diagnosis(id="diag_<b>", run_id="run_1", num_samples=100, num_failures=10)
    region = message.regions.add(id=0, support=20, failures=8, error_rate=0.4, lift=4.0)
    region.explanations.add(name="camera=<script>alert(1)</script> & co")
    message.slices.add(name="site=\"a\" <img src=x>", support=30, failures=9, error_rate=0.3)
    shown = Tables(Diagnosis(message)._repr_html_())
    assert "script" not in shown.tags and "img" not in shown.tags
    (regions, slices) = shown.tables
    assert regions[0][10] == "camera=<script>alert(1)</script> & co"
    assert slices[0][0] == "site=\"a\" <img src=x>"
    assert "diagnosis diag_<b> of run run_1" in " ".join(shown.text)
    assert len(Tables(Diagnosis(pb.Diagnosis(id="d", run_id="r"))._repr_html_()).tables) == 0   # nothing found


def test_a_comparison_shows_what_got_worse_its_regions_and_slices_as_html(two_versions):
    _, v2 = two_versions
    comparison = v2.previous_version
    shown = Tables(comparison._repr_html_())
    worse, regions, slices, classes = shown.tables
    expected = comparison.regressions()
    assert [row[1] for row in worse] == expected["name"].head(20).tolist() and len(worse) > 0
    assert [row[0] for row in regions] == [r.status for r in comparison.message.regions[:20]]
    assert [row[0] for row in slices] == comparison.slices_frame()["slice"].head(20).tolist()
    assert [row[0] for row in classes] == comparison.classes_frame()["class"].head(20).tolist() and len(classes)
    assert "v1 -> v2 on" in " ".join(shown.text)


def test_a_comparison_with_nothing_worse_says_so():
    message = pb.RunComparison(run_id_a="a", run_id_b="b", model_version_a="v1", model_version_b="v2",
                               num_shared=100, alpha=0.05)
    message.overall.CopyFrom(pb.RateChange(support=100, failures_a=10, failures_b=5, error_rate_a=0.1,
                                           error_rate_b=0.05, difference=-0.05, p_value=0.01))
    shown = Tables(Comparison(message)._repr_html_())
    assert shown.tables == [] and "Nothing significantly worse." in " ".join(shown.text)
