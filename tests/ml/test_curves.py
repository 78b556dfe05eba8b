"""The model card's curve points: the ROC curve and calibration as scikit-learn computes them."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from ml.evaluation import curves


def test_roc_points_run_from_0_0_to_1_1_and_enclose_the_auc() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1)
    found = curves(y, p)
    roc = np.array(found["roc"])
    assert roc[0].tolist() == [0.0, 0.0] and roc[-1].tolist() == [1.0, 1.0]
    assert len(roc) <= 60 and np.all(np.diff(roc[:, 0]) >= 0) and np.all(np.diff(roc[:, 1]) >= 0)
    # the thinned curve's area, under its steps, stays close to the exact AUC
    area = float(np.sum(np.diff(roc[:, 0]) * roc[1:, 1]))
    assert abs(area - roc_auc_score(y, p)) < 0.03


def test_calibration_bins_count_every_member_once() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.05, 0.12, 0.55, 0.58, 0.97, 1.0])
    found = curves(y, p, bins=10)
    assert found["calibration"] == [[0.05, 0.0, 1], [0.12, 0.0, 1], [0.565, 1.0, 2], [0.985, 0.5, 2]]
    assert sum(n for _, _, n in found["calibration"]) == len(y)
