"""scikit-learn's estimator protocol: clone, parameters, Pipeline, GridSearchCV and check_estimator."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import brainrecon

# Every check of scikit-learn's suite must pass: none is expected to fail. Two are skipped by
# scikit-learn itself where their dependencies are absent: array API input (needs
# SCIPY_ARRAY_API=1 and an array library) and pandas input (needs pandas, not installed here).
EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks([brainrecon.RidgeCV(), brainrecon.RidgeCV(cv=3, alpha_per_target=False)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_check_estimator(estimator, check):
    check(estimator)


def test_clone_and_params():
    est = brainrecon.RidgeCV(alphas=(1.0, 10.0), cv=5, precision="float32", n_targets_batch=64)
    copy = clone(est)
    assert copy is not est
    assert copy.get_params() == est.get_params()
    copy.set_params(cv=None, gcv=True)
    assert copy.gcv and est.cv == 5
    assert set(est.get_params()) == {"alphas", "cv", "alpha_per_target", "fit_intercept", "gcv",
                                     "precision", "n_targets_batch", "scoring", "standardize"}


def test_pipeline_in_grid_search():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 30)) * rng.uniform(0.1, 10, size=30)
    Y = X @ rng.standard_normal((30, 4)) + rng.standard_normal((120, 4))
    pipe = make_pipeline(StandardScaler(), brainrecon.RidgeCV(alphas=np.logspace(-1, 3, 9)))
    grid = GridSearchCV(pipe, {"ridgecv__fit_intercept": [True, False],
                               "ridgecv__gcv": [False, True]}, cv=KFold(3))
    grid.fit(X, Y)
    assert grid.best_params_["ridgecv__fit_intercept"] is True
    assert grid.best_score_ > 0.8
    fitted = grid.best_estimator_[-1]
    assert fitted.coef_.shape == (4, 30) and fitted.alpha_.shape == (4,)
    assert grid.predict(X).shape == (120, 4)


def test_groups_are_routed_through_fit():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 6))
    y = X[:, 0] + 0.1 * rng.standard_normal(40)
    groups = np.repeat(np.arange(10), 4)
    pipe = make_pipeline(StandardScaler(), brainrecon.RidgeCV(cv=5))
    pipe.fit(X, y, ridgecv__groups=groups)
    assert pipe.score(X, y) > 0.9
