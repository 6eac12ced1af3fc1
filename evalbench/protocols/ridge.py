"""RidgeProbe: big_vision's closed-form ridge regression onto +-1 one-hot targets."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from .metrics import check_class_labels, check_n_features

#: big_vision appends a constant feature of this size for the bias, so that the bias is
#: (almost) unregularised by the shared L2 penalty.
BIAS_CONSTANT = 100.0


class RidgeProbe(ClassifierMixin, BaseEstimator):
    """Ridge regression classifier as in big_vision ``evaluators/fewshot.py``.

    Features are standardised (mean, std + 1e-5 from the fit data), a constant feature
    BIAS_CONSTANT is appended, targets are 2*onehot - 1, and the weights solve
    (X^T X + l2 I) w = X^T Y (or the dual form when there are fewer rows than columns),
    in float64. Prediction: argmax of the scores (ties -> smaller class).

    Args:
        l2: the L2 penalty (big_vision default 2**10).
    """

    def __init__(self, l2: float = 2.0 ** 10):
        self.l2 = l2

    def _design(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float64) - self.mean_) / self.std_
        return np.hstack([Z, np.full((Z.shape[0], 1), BIAS_CONSTANT)])

    def fit(self, X, y):
        """Solve the ridge system.

        Returns:
            self

        Raises:
            ValueError: bad shapes or a non-positive l2.
        """
        if not self.l2 > 0:
            raise ValueError(f"l2 must be positive, got {self.l2!r}")
        X, y = check_X_y(X, y, dtype=(np.float64, np.float32))
        check_class_labels(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        X64 = np.asarray(X, dtype=np.float64)
        self.mean_ = X64.mean(axis=0)
        self.std_ = X64.std(axis=0) + 1e-5
        A = self._design(X64)
        Y = 2.0 * np.eye(len(self.classes_))[yi] - 1.0
        n, d = A.shape
        if n >= d:
            self.coef_ = np.linalg.solve(A.T @ A + self.l2 * np.eye(d), A.T @ Y)
        else:  # dual form: w = A^T (A A^T + l2 I)^-1 Y, same solution, n x n system
            self.coef_ = A.T @ np.linalg.solve(A @ A.T + self.l2 * np.eye(n), Y)
        return self

    def class_scores(self, X) -> np.ndarray:
        """Regression scores, one column per class (N, n_classes)."""
        check_is_fitted(self, "coef_")
        X = check_array(X, dtype=(np.float64, np.float32))
        check_n_features(self, X)
        return self._design(X) @ self.coef_

    def decision_function(self, X) -> np.ndarray:
        """Regression scores (N, n_classes); for two classes the score of classes_[1], (N,),
        as sklearn's classifiers. With +-1 targets the two columns are exact negatives of
        each other (the targets are, and the solve is linear), so its sign is the prediction."""
        scores = self.class_scores(X)
        return scores[:, 1] if len(self.classes_) == 2 else scores

    def predict(self, X) -> np.ndarray:
        """Label with the highest score (ties -> smaller class)."""
        scores = self.class_scores(X)  # first: raises NotFittedError before classes_ is read
        return self.classes_[np.argmax(scores, axis=1)]
