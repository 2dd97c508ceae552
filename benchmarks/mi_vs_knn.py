"""Mutual information by Gaussian mixtures (biosig) against scikit-learn's kNN estimators.

Compares :func:`biosig.explain.mutual_information` / :func:`class_mutual_information` with
``sklearn.feature_selection.mutual_info_regression`` / ``mutual_info_classif`` (Kraskov-type
kNN estimators, 3 neighbours) on

- accuracy: bivariate Gaussians with known correlation (``I = -1/2 log(1 - rho^2)``), as drawn
  and after strictly monotone maps of both variables (``exp(x)``, ``y^3``: same MI), mean
  absolute error and bias over ``--seeds`` random samples;
- IRIS: ``I(X_i; C)`` per feature, mean over seeds, next to METHODS.md §5.2;
- speed: seconds per pair (one pair, and 48 x 8 = 384 pairs on 1000 samples as in the live
  explainer: default settings, live settings, and a warm :class:`ModelMITracker` update).

Prints tables (this is a benchmark: print, not logging). BLAS/OpenMP are held to one thread
(sklearn's k-means spins its OpenMP threads otherwise, which on a busy 2-core machine costs it
10x); ``n_jobs`` threads are biosig's own. Timings on a shared VM move by tens of percent
between runs.

Usage::

    python benchmarks/mi_vs_knn.py [--seeds 10] [--quick] [--sklearn-engine]
"""

from __future__ import annotations

import os

# One thread per BLAS/OpenMP pool: set before numpy and sklearn load them.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression  # noqa: E402

from biosig.explain import (  # noqa: E402
    ModelMITracker,
    class_mutual_information,
    model_mutual_information,
    mutual_information,
)

RHOS = (0.3, 0.6, 0.9)
IRIS_REFERENCE = {"knn (METHODS)": [0.488, 0.267, 0.987, 0.985],
                  "GMM K<=4 (METHODS)": [0.501, 0.310, 0.935, 0.997]}
IRIS_NAMES = ["sepal len", "sepal wid", "petal len", "petal wid"]


def gaussian_sample(rho: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    z = np.random.default_rng(seed).standard_normal((n, 2))
    return z[:, 0], rho * z[:, 0] + np.sqrt(1.0 - rho**2) * z[:, 1]


def gmm_pair(x, y, seed):
    return mutual_information(x, y, random_state=seed)[0, 0]


def knn_pair(x, y, seed):
    return mutual_info_regression(x[:, None], y, random_state=seed)[0]


ESTIMATORS = {"GMM (biosig)": gmm_pair, "kNN (sklearn)": knn_pair}
MAPS = {"as drawn": (lambda x: x, lambda y: y), "exp(x), y^3": (np.exp, lambda y: y**3)}


def accuracy_table(sizes, seeds) -> None:
    print("\n== Known answer: bivariate Gaussian, I = -1/2 log(1 - rho^2) (nats) ==")
    print(f"{'variables':<12} {'n':>5} {'rho':>4} {'true':>6} | "
          + " | ".join(f"{name:>13} MAE   bias" for name in ESTIMATORS))
    for label, (map_x, map_y) in MAPS.items():
        for n in sizes:
            for rho in RHOS:
                truth = -0.5 * np.log(1.0 - rho**2)
                cells = []
                for estimate in ESTIMATORS.values():
                    errors = []
                    for seed in range(seeds):
                        x, y = gaussian_sample(rho, n, seed)
                        errors.append(estimate(map_x(x), map_y(y), seed) - truth)
                    errors = np.asarray(errors)
                    cells.append(f"{np.mean(np.abs(errors)):>17.4f} {np.mean(errors):+.4f}")
                print(f"{label:<12} {n:>5} {rho:>4} {truth:>6.3f} | " + " | ".join(cells))


def iris_table(seeds) -> None:
    X, y = load_iris(return_X_y=True)
    gmm = np.mean([class_mutual_information(X, y, random_state=s) for s in range(seeds)], axis=0)
    knn = np.mean([mutual_info_classif(X, y, random_state=s) for s in range(seeds)], axis=0)
    print(f"\n== IRIS: I(X_i; C) in nats, mean of {seeds} seeds (upper bound log 3 = 1.099) ==")
    print(f"{'estimator':<24}" + "".join(f"{name:>11}" for name in IRIS_NAMES))
    rows = {"GMM (biosig)": gmm, "kNN (sklearn)": knn, **IRIS_REFERENCE}
    for name, values in rows.items():
        print(f"{name:<24}" + "".join(f"{v:>11.3f}" for v in values))


def timed(function, repeats: int = 3) -> tuple[float, float]:
    """Best of ``repeats`` (wall-clock, process CPU) times, in seconds.

    CPU time is shown too because on a shared machine another job's load stretches wall time.
    """
    best_wall = best_cpu = np.inf
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def live_like_buffer(n=1000, n_features=48, n_classes=8, seed=0, separation=1.5):
    """EMG-like features (positive, skewed, class-dependent) and a softmax model's posteriors."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.integers(0, n_classes, n // 50 + 1), 50)[: n + 400]
    centres = rng.normal(size=(n_classes, n_features))
    features = np.exp(0.5 * rng.standard_normal((labels.size, n_features))
                      + separation * centres[labels])
    logits = np.log(features) @ rng.normal(size=(n_features, n_classes))
    posteriors = np.exp(logits - logits.max(axis=1, keepdims=True))
    return features, posteriors / posteriors.sum(axis=1, keepdims=True)


def speed_table(sklearn_engine: bool, quick: bool) -> None:
    print("\n== Speed (best of 3, seconds) ==")
    x, y = gaussian_sample(0.6, 1000, 0)
    rows = [
        ("1 pair, n=1000: GMM (K<=5, 3 inits, 1e4 MC)", timed(lambda: gmm_pair(x, y, 0))),
        ("1 pair, n=1000: kNN mutual_info_regression", timed(lambda: knn_pair(x, y, 0))),
    ]
    if sklearn_engine:
        rows.append(("1 pair, n=1000: GMM, sklearn GaussianMixture engine",
                     timed(lambda: mutual_information(x, y, random_state=0, engine="sklearn"),
                           repeats=2)))
    X, P = live_like_buffer()
    X, P = X[:1000], P[:1000]
    logit = np.log(P) - np.log1p(-P)
    rows.append(("48x8 pairs, n=1000: kNN (48 features per output)",
                 timed(lambda: [mutual_info_regression(X, logit[:, j], random_state=0)
                                for j in range(P.shape[1])], repeats=1)))
    settings = {"default (K<=5, 3 inits, 1e4 MC)": {},
                "live (K<=3, 1 init, 2000 MC)": dict(max_components=3, n_init=1, n_mc=2000)}
    for label, options in settings.items():
        if quick and not options:
            continue
        for jobs in (1, 2):
            seconds = timed(lambda: model_mutual_information(
                None, X, posteriors=P, random_state=0, n_jobs=jobs, **options), repeats=1)
            rows.append((f"48x8 pairs, n=1000: GMM {label}, n_jobs={jobs}", seconds))
    features, posteriors = live_like_buffer()
    for jobs in (1, 2):
        tracker = ModelMITracker(random_state=0, n_jobs=jobs, reselect_every=10)
        times = []
        for start in range(0, 400, 40):  # 40 new windows per update: 2 s at a 50 ms hop
            times.append(timed(lambda: tracker.update(features[start:start + 1000],
                                                      posteriors[start:start + 1000]), 1))
        rows.append((f"48x8 pairs, n=1000: ModelMITracker cold sweep, n_jobs={jobs}", times[0]))
        rows.append((f"48x8 pairs, n=1000: ModelMITracker warm update (median), n_jobs={jobs}",
                     tuple(np.median(times[1:], axis=0))))
    width = max(len(label) for label, _ in rows)
    print(f"{'':<{width}}  {'wall':>8}    {'CPU':>8}    {'wall per pair':>14}")
    for label, (wall, cpu) in rows:
        per_pair = wall / 384 if label.startswith("48x8") else wall
        print(f"{label:<{width}}  {wall:8.3f} s  {cpu:8.3f} s  {per_pair * 1e3:9.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="random samples per setting")
    parser.add_argument("--quick", action="store_true", help="fewer seeds, n = 1000 only")
    parser.add_argument("--sklearn-engine", action="store_true",
                        help="also time engine='sklearn' (one GaussianMixture per pair and K)")
    args = parser.parse_args()
    seeds = 3 if args.quick else args.seeds
    print(f"biosig MI benchmark: {os.cpu_count()} CPUs, {seeds} seeds")
    accuracy_table((1000,) if args.quick else (500, 5000), seeds)
    iris_table(seeds)
    speed_table(args.sklearn_engine, args.quick)


if __name__ == "__main__":
    main()
