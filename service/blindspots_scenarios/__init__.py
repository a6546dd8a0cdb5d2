"""Scenario families with planted failure conditions, for benchmarks and demos (not served).

Each family draws train / test / pool splits from real data that ships inside
installed packages (scikit-learn's digits images and breast-cancer table) or
from a synthetic latent world, trains a small torch model on the train split,
and returns the model's test embeddings and probabilities with the truth: the
planted condition of every test row and the metadata predicate that caused it.

    from blindspots_scenarios import DEV, HELD_OUT, build, seeds

    inst = build("digits_small", seed=1000)          # an Instance
    inst.embeddings, inst.test.labels, inst.probabilities, inst.test.metadata
    inst.test.condition          # planted condition per test row, -1 = none
    inst.cause_mask(0)           # rows matched by condition 0's true cause (None: no cause)

    # Closed loop: retrain from scratch with picked pool rows (true labels added).
    model = inst.make_model().fit(*inst.training_set(picked_pool_rows))
    accuracy = (model.predict_proba(inst.test.inputs).argmax(1) == inst.test.true_labels).mean()

The demo's own synthetic listings scenario (``blindspots demo``, examples/, the
older benches) lives beside them in :mod:`.listings`, with :mod:`.demo` running it.

Defaults are chosen on ``DEV`` with ``seeds("dev", n)``; results are reported
on ``HELD_OUT`` with ``seeds("held_out", n)`` (other seeds; ``build`` refuses a
seed from the other half).
"""
from .base import Cause, Condition, Instance, Model, Split, Term
from .families import BY_NAME, DEV, FAMILIES, HELD_OUT, FamilySpec, build, seeds

__all__ = ["BY_NAME", "DEV", "FAMILIES", "HELD_OUT", "Cause", "Condition", "FamilySpec", "Instance",
           "Model", "Split", "Term", "build", "seeds"]
