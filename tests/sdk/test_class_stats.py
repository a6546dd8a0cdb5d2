"""Per-class statistics through a real server: the diagnosis's classes agree with scikit-learn on
the run's own rows, the class the model breaks on comes first, and the summary, the notebook
display and the HTML report show it."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from blindspots.report import write_report


def test_a_diagnosis_gives_each_class_its_errors_precision_and_recall(client, small_scenario, tmp_path):
    s = small_scenario.scenario
    probabilities = small_scenario.test_probs.copy()
    labels = np.asarray(s.test.labels)
    broken_class, read_as = 0, 1
    rng = np.random.default_rng(2)
    flip = (labels == broken_class) & (rng.random(len(labels)) < 0.5)   # half of class 0 read as class 1
    probabilities[flip] = 0.0
    probabilities[flip, read_as] = 1.0
    run = client.create_run("eval", class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1])
    run.log_predictions(s.test.ids, s.test.embeddings, labels=labels, probabilities=probabilities,
                        metadata=s.test.metadata, progress=False)
    diagnosis = run.diagnose(progress=False)

    classes = diagnosis.classes_frame()
    predicted = probabilities.argmax(axis=1)
    k = len(s.class_names)
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=range(k),
                                                                     zero_division=0)
    by = classes.set_index("label")
    present = [c for c in range(k) if support[c]]
    assert sorted(by.index) == sorted(set(present) | set(np.unique(predicted)))
    np.testing.assert_array_equal(by.loc[present, "support"], support[present])
    np.testing.assert_allclose(by.loc[present, "recall"], recall[present])
    np.testing.assert_allclose(by.loc[present, "precision"], precision[present])
    np.testing.assert_allclose(by.loc[present, "f1"], f1[present])
    assert by["failures"].sum() == diagnosis.message.num_failures
    worst = classes.iloc[0]
    assert (worst["label"], worst["class"]) == (broken_class, s.class_names[broken_class])
    assert worst["q_value"] < 1e-6 and worst["top_confusion"].startswith(f"{s.class_names[read_as]} (")

    summary = diagnosis.summary()
    assert "classes that fail more often than the test set:" in summary
    assert f"  {s.class_names[broken_class]}: " in summary and f"mostly read as {s.class_names[read_as]}" in summary
    assert "Classes, worst first" in diagnosis._repr_html_()
    html = write_report(client, run.id, tmp_path / "report.html").read_text()
    assert "<h2>Classes</h2>" in html and f"<td>{s.class_names[broken_class]}</td>" in html
