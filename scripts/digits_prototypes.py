"""Reproduce the seed report's MNIST inverse-inference result on scikit-learn's 8×8 digits.

Binarises ``load_digits`` (pixel > 7), trains biosig heads (SDGM and Johnson SU, diagonal
quadratic expansion), infers one Bernoulli mean-field prototype per digit with the training
pixel means as prior (METHODS.md §6), checks each prototype with an independent classifier
(logistic regression on the same binarised digits), names the most ambiguous digit, and saves
``docs/figures/digits_prototypes.png``: class-mean images above each head's prototypes.

Usage::

    python scripts/digits_prototypes.py [--beta 10] [--out docs/figures/digits_prototypes.png]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from biosig.explain import prototypes
from biosig.nets.estimators import JSUClassifier, SDGMClassifier

REPO_ROOT = Path(__file__).resolve().parents[1]
DIGITS = list(range(10))


def binarised_digits() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    return (digits.data > 7).astype(np.float64), digits.target


def heads(seed: int) -> dict:
    """The biosig heads to explain (diagonal expansion: 64 inputs → 128, not 2 144, features)."""
    return {
        "SDGM": SDGMClassifier(1, covariance="diag", kl_weight=1.0, random_state=seed,
                               device="cpu"),
        "JSU": JSUClassifier(covariance="diag", device="cpu"),
    }


def independent_margin(classifier, images: np.ndarray) -> np.ndarray:
    """Per image: the independent classifier's probability of the own digit minus the best other."""
    proba = classifier.predict_proba(images)
    own = proba[np.arange(len(images)), DIGITS]
    others = np.where(np.eye(10, dtype=bool), -np.inf, proba).max(axis=1)
    return own - others


def explain_head(name, head, X, y, rho, beta, independent) -> dict:
    started = time.perf_counter()
    head.fit(X, y)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    results = prototypes(head, prior="bernoulli", prior_mean=rho, beta=beta)
    infer_s = time.perf_counter() - started
    means = np.stack([results[str(d)].mean for d in DIGITS])
    target_probability = np.array([results[str(d)].target_probability for d in DIGITS])
    predicted = independent.predict(means)
    predicted_binary = independent.predict((means > 0.5).astype(np.float64))
    margin = independent_margin(independent, means)
    print(f"\n{name}: training accuracy {head.score(X, y):.3f}, fit {fit_s:.1f} s, "
          f"10 prototypes {infer_s:.1f} s (β = {beta:g})")
    print(" digit  p(c*|m)  LR(m)  LR(m>0.5)  LR margin  KL[nats]  iterations")
    for d in DIGITS:
        proto = results[str(d)]
        print(f"   {d}    {target_probability[d]:6.3f}    {predicted[d]}       {predicted_binary[d]}"
              f"       {margin[d]:6.3f}   {proto.kl_to_prior:7.2f}   {proto.n_iter:4d}"
              f"{'' if proto.converged else ' (not converged)'}")
    wrong = [d for d in DIGITS if predicted[d] != d]
    print(f" independent classifier agrees on {10 - len(wrong)}/10 prototype means"
          f"{'' if not wrong else f' (wrong: {wrong})'}, "
          f"{int(np.sum(predicted_binary == DIGITS))}/10 thresholded")
    print(f" most ambiguous: {int(np.argmin(target_probability))} by lowest p(c*|m) "
          f"({target_probability.min():.3f}); {int(np.argmin(margin))} by lowest independent "
          f"margin ({margin.min():.3f})")
    return {"means": means, "p": target_probability}


def save_figure(class_means: np.ndarray, rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"class mean": (class_means, None), **{f"{k} prototype": (v["means"], v["p"])
                                                    for k, v in rows.items()}}
    fig, axes = plt.subplots(len(labels), 10, figsize=(12, 1.5 * len(labels) + 0.4))
    for row, (label, (images, probability)) in enumerate(labels.items()):
        for d in DIGITS:
            ax = axes[row, d]
            ax.imshow(images[d].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if probability is not None:
                ax.set_title(f"p={probability[d]:.2f}", fontsize=8)
            elif row == 0:
                ax.set_title(str(d), fontsize=10)
        axes[row, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("Binarised digits: class means and mean-field prototypes P(pixel on | digit)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"\nsaved {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beta", type=float, default=10.0,
                        help="sharpening exponent β (naive mean field at β = 1 stays blurry)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "docs" / "figures" / "digits_prototypes.png")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    X, y = binarised_digits()
    rho = X.mean(axis=0)
    # One BLAS thread: next to torch's OpenMP pool, more threads oversubscribe badly.
    with threadpool_limits(1):
        independent = LogisticRegression(max_iter=2000).fit(X, y)
    print(f"independent classifier (logistic regression) training accuracy "
          f"{independent.score(X, y):.3f}")
    rows = {name: explain_head(name, head, X, y, rho, args.beta, independent)
            for name, head in heads(args.seed).items()}
    class_means = np.stack([X[y == d].mean(axis=0) for d in DIGITS])
    save_figure(class_means, rows, args.out)


if __name__ == "__main__":
    main()
