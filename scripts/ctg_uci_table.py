"""Cross-validated NSP classification on the UCI cardiotocography table, biosig vs scikit-learn.

The UCI table (21 SisPorto features per CTG, NSP = 1 normal / 2 suspect / 3 pathological) is
read by :func:`biosig.datasets.read_feature_table`, the loader behind
``biosig train CTG_train.csv --label-column NSP --drop-columns row_id,CLASS``. Each biosig
architecture is the estimator ``biosig train --arch ARCH`` fits (:func:`biosig.training.make_estimator`,
default hyper-parameters, seed 0), fitted here on the whole training fold: ``biosig train``
additionally holds 20 % out for temperature scaling, which changes probabilities but not the
predicted class. Baselines: scikit-learn's RandomForestClassifier (500 trees) and
LogisticRegression (standardised, C = 1, multinomial), untuned.

Protocol: stratified 5-fold CV (seed 0) on the 1701 development rows; macro-F1 and accuracy
are mean +/- s.d. over the folds; SDGM's sparsity (share of pruned weights, live components)
is averaged over the folds. The rows carry no patient id, so segments of one exam may fall in
several folds (a limitation of the public table; it flatters every model alike).

Usage::

    python scripts/ctg_uci_table.py                 # all architectures, ~5 min on 2 cores
    python scripts/ctg_uci_table.py --archs lda jsu --folds 3
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from biosig.datasets import read_feature_table

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "uci-cardiotocography" / "CTG_train.csv"


def make_model(name: str, seed: int):
    if name == "sklearn-rf":
        return RandomForestClassifier(n_estimators=500, random_state=seed, n_jobs=1)
    if name == "sklearn-logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    from biosig.training import make_estimator

    return make_estimator(name, random_state=seed, verbose=False)


def evaluate(name: str, X, y, folds: int, seed: int) -> dict:
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    f1, acc, pruned, components, seconds = [], [], [], [], 0.0
    for train, test in cv.split(X, y):
        model = make_model(name, seed)
        started = time.perf_counter()
        model.fit(X[train], y[train])
        seconds += time.perf_counter() - started
        predicted = np.asarray(model.predict(X[test])).astype(str)
        f1.append(f1_score(y[test], predicted, average="macro"))
        acc.append(accuracy_score(y[test], predicted))
        sparsity = getattr(model, "sparsity_", None)
        if sparsity:
            pruned.append(sparsity["fraction_pruned"])
            components.append(f"{sparsity['n_components_live']}/{sparsity['n_components_initial']}")
    return {"f1": np.array(f1), "acc": np.array(acc), "fit_s": seconds / folds,
            "pruned": np.mean(pruned) if pruned else None, "components": components}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="CTG_train.csv")
    parser.add_argument("--archs", nargs="+", default=["sdgm", "jsu", "lda", "mlp"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    data = read_feature_table(args.data, label_column="NSP", drop_columns=["row_id", "CLASS"])
    X, y = data.X, data.y.astype(str)
    counts = ", ".join(f"{c}: {int((y == c).sum())}" for c in data.classes)
    print(f"UCI CTG: {len(y)} rows, {X.shape[1]} features, NSP {counts}; "
          f"stratified {args.folds}-fold CV, seed {args.seed}\n")
    print("| model | macro-F1 | accuracy | fit time per fold (s) | SDGM pruned weights | SDGM live components per fold |")
    print("|---|---|---|---|---|---|")
    for name in tqdm([*args.archs, "sklearn-rf", "sklearn-logreg"], desc="models", leave=False):
        r = evaluate(name, X, y, args.folds, args.seed)
        pruned = "-" if r["pruned"] is None else f"{100 * r['pruned']:.1f} %"
        components = ", ".join(r["components"]) or "-"
        label = name if name.startswith("sklearn") else f"biosig {name}"
        print(f"| {label} | {r['f1'].mean():.3f} ± {r['f1'].std():.3f} | "
              f"{r['acc'].mean():.3f} ± {r['acc'].std():.3f} | {r['fit_s']:.1f} | {pruned} | {components} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
