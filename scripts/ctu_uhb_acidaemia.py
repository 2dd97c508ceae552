"""Acidaemia from biosig's own FIGO features on CTU-UHB, and a check of those features against UCI.

Three parts, each printed as Markdown:

1. **Feature check** (``--validate``): distributions of biosig's per-record baseline, LTV,
   acceleration and deceleration rates on the CTU-UHB records against the UCI table's
   SisPorto columns (LB, MLTV, AC, DL + DS + DP), which come from other recordings and other
   software, so only ranges and shapes can agree.
2. **Acidaemia** (always): every record goes through the CTG pipeline (``ctg_default``: 10-min
   windows, 1-min hop); the windows ending in the last ``--minutes`` of the record (the
   records end at or shortly before delivery) with >= 50 % valid FHR are used. Labels: pH < 7.15 and pH < 7.05. Models, all cross-validated by record (10 x repeated
   stratified 5-fold, no tuning on the test folds; the hyper-parameters are fixed below):

   - ``logreg``: scikit-learn logistic regression (L2, C = 0.1, balanced class weights) on the
     per-record mean of the window features (median imputation, standardised);
   - ``biosig-lda``: biosig's LDA on the windows, posteriors averaged per record;
   - single features with no training (the deceleration time share, the deepest deceleration
     and STV), as a floor any model should pass.

   AUC: mean +/- s.d. over the 10 repeats, and a 95 % bootstrap interval (2000 resamples of
   the records) of the AUC of the per-record scores averaged over the repeats.
3. **Bundled model** (``--export-model PATH``): the chosen architecture trained on the windows
   of all records (last ``--minutes``, pH < ``--export-threshold`` = acidaemia) with
   :func:`biosig.training.train_model`, so it runs on live CTG streams; its card gets the
   record-level cross-validated AUC of the same recipe.

Usage::

    python scripts/ctu_uhb_acidaemia.py --validate
    python scripts/ctu_uhb_acidaemia.py --export-model models/ctu-uhb-figo-lda.onnx

Runtime on a shared 2-core machine: ~1 min for the features of 160 records, ~1 min for the CV.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import make_pipeline
from scipy.stats import rankdata
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from biosig.config import FeatureConfig, PipelineConfig
from biosig.ctg import CTG_FEATURE_NAMES, analyse_stream
from biosig.io import read_recording

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: Features of the bundled model: all but the contraction count, which is NaN wherever the
#: tocogram is missing (a third of CTU-UHB windows) and would leave those windows unclassified.
MODEL_FEATURES = tuple(f for f in CTG_FEATURE_NAMES if f != "contractions")
N_REPEATS, N_FOLDS, N_BOOT = 10, 5, 2000

logger = logging.getLogger("ctu_uhb_acidaemia")


@dataclass
class Record:
    name: str
    ph: float
    features: np.ndarray      # (n_windows, n_features), every window
    t_end: np.ndarray         # window end times, s
    flagged: np.ndarray
    duration_s: float
    events: list


def load_records(folder: Path, config: PipelineConfig) -> list[Record]:
    paths = sorted(folder.glob("*.hea"))
    records = []
    for path in tqdm(paths, desc="CTU-UHB features", unit="record"):
        recording = read_recording(path)
        stream = recording.signal(None)
        analysis = analyse_stream(stream, config)
        res = analysis.results
        records.append(Record(
            name=path.stem, ph=float(recording.metadata["outcome_ph"]), features=res.features,
            t_end=res.t_end, flagged=res.flagged,
            duration_s=float(stream.timestamps[-1] - stream.timestamps[0] + 1 / stream.srate),
            events=analysis.snapshot.events,
        ))
    return records


def last_windows(record: Record, minutes: float) -> np.ndarray:
    """Rows of the windows ending in the last ``minutes`` of the record that have a baseline
    (>= 50 % valid FHR; a missing contraction count alone does not drop a window here)."""
    has_baseline = np.isfinite(record.features[:, CTG_FEATURE_NAMES.index("baseline")])
    keep = (record.t_end >= record.t_end.max() - minutes * 60.0 + 1e-9) & has_baseline
    return record.features[keep]


def _auc(y, score) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half), from ranks."""
    ranks = rankdata(score)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def record_means(windows) -> np.ndarray:
    """Per-record mean of each window feature (NaN where a record has none finite)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, imputed later
        return np.array([np.nanmean(w, axis=0) for w in windows])


def auc_ci(y, score, rng) -> tuple[float, float, float]:
    """AUC and its 95 % percentile bootstrap interval over records."""
    auc = roc_auc_score(y, score)
    boots = []
    n = len(y)
    for _ in range(N_BOOT):
        idx = rng.integers(0, n, n)
        if 0 < y[idx].sum() < n:
            boots.append(_auc(y[idx], score[idx]))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(auc), float(lo), float(hi)


def cross_validate(records, windows, y, method: str, seed: int = 0):
    """Per-repeat AUCs and the per-record out-of-fold score averaged over repeats."""
    cv = RepeatedStratifiedKFold(n_splits=N_FOLDS, n_repeats=N_REPEATS, random_state=seed)
    record_x = record_means(windows)
    scores = np.zeros((N_REPEATS, len(y)))
    for k, (train, test) in enumerate(cv.split(record_x, y)):
        repeat = k // N_FOLDS
        if method == "logreg":
            model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                                  LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000))
            model.fit(record_x[train], y[train])
            scores[repeat, test] = model.predict_proba(record_x[test])[:, 1]
        else:
            scores[repeat, test] = _biosig_window_scores(windows, y, train, test, method, seed)
    aucs = np.array([roc_auc_score(y, s) for s in scores])
    return aucs, scores.mean(axis=0)


def _biosig_window_scores(windows, y, train, test, arch: str, seed: int) -> np.ndarray:
    from biosig.training import make_estimator

    x_train = np.concatenate([windows[i] for i in train])
    y_train = np.concatenate([np.full(len(windows[i]), str(y[i])) for i in train]).astype(object)
    imputer = SimpleImputer(strategy="median").fit(x_train)
    estimator = make_estimator(arch, random_state=seed, verbose=False)
    estimator.fit(imputer.transform(x_train), y_train)
    positive = list(map(str, estimator.classes_)).index("1")
    return np.array([estimator.predict_proba(imputer.transform(windows[i]))[:, positive].mean()
                     for i in test])


def acidaemia_table(records, feature_names, minutes_list, thresholds, archs, seed=0) -> str:
    rng = np.random.default_rng(seed)
    lines = [
        "| pH threshold | window | model | records (acidaemic) | AUC mean ± s.d. (10 × 5-fold) | AUC of averaged OOF scores [95 % bootstrap CI] |",
        "|---|---|---|---|---|---|",
    ]
    for threshold in thresholds:
        for minutes in minutes_list:
            windows = [last_windows(r, minutes) for r in records]
            usable = [i for i, w in enumerate(windows) if len(w)]
            windows = [windows[i] for i in usable]
            y = np.array([int(records[i].ph < threshold) for i in usable])
            head = f"| < {threshold} | last {minutes:g} min | "
            counts = f"{len(y)} ({int(y.sum())})"
            for method in ["logreg", *[f"biosig-{a}" for a in archs]]:
                aucs, oof = cross_validate(records, windows, y, method.removeprefix("biosig-"), seed)
                auc, lo, hi = auc_ci(y, oof, rng)
                lines.append(f"{head}{method} | {counts} | {aucs.mean():.3f} ± {aucs.std():.3f} | "
                             f"{auc:.3f} [{lo:.3f}, {hi:.3f}] |")
            record_x = record_means(windows)
            for name, sign in (("decel_time", 1), ("decel_depth", 1), ("stv", -1)):
                column = record_x[:, feature_names.index(name)]
                column = np.where(np.isfinite(column), column, np.nanmedian(column))
                auc, lo, hi = auc_ci(y, sign * column, rng)
                direction = "higher" if sign > 0 else "lower"
                lines.append(f"{head}{name} alone ({direction} = acidaemic) | {counts} | - | "
                             f"{auc:.3f} [{lo:.3f}, {hi:.3f}] |")
    return "\n".join(lines)


def _quantiles(x) -> str:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    p = np.percentile(x, [10, 25, 50, 75, 90])
    return " / ".join(f"{v:.3g}" for v in p)


def validation_table(records, feature_names, uci_path: Path) -> str:
    """CTU-UHB (biosig) per-record summaries next to the UCI SisPorto columns."""
    import csv

    with open(uci_path, newline="") as f:
        rows = list(csv.DictReader(f))
    uci = {k: np.array([float(r[k]) for r in rows]) for k in ("LB", "MLTV", "AC", "DL", "DS", "DP", "MSTV")}
    base, ltv, acc, dec = [], [], [], []
    col = {n: feature_names.index(n) for n in feature_names}
    for r in records:
        ok = np.isfinite(r.features[:, col["baseline"]])
        if not ok.any():
            continue
        base.append(np.nanmedian(r.features[ok, col["baseline"]]))
        ltv.append(np.nanmean(r.features[ok, col["ltv"]]))
        acc.append(sum(e.kind == "acceleration" for e in r.events) / r.duration_s)
        dec.append(sum(e.family == "deceleration" for e in r.events) / r.duration_s)
    uci_dec = uci["DL"] + uci["DS"] + uci["DP"]
    lines = [
        "| quantity | CTU-UHB, biosig (p10 / p25 / p50 / p75 / p90) | UCI, SisPorto (p10 / p25 / p50 / p75 / p90) |",
        "|---|---|---|",
        f"| baseline FHR, bpm (LB) | {_quantiles(base)} | {_quantiles(uci['LB'])} |",
        f"| long-term variability, bpm (MLTV) | {_quantiles(ltv)} | {_quantiles(uci['MLTV'])} |",
        f"| accelerations per 10 min (AC × 600) | {_quantiles(np.array(acc) * 600)} | {_quantiles(uci['AC'] * 600)} |",
        f"| decelerations per 10 min ((DL + DS + DP) × 600) | {_quantiles(np.array(dec) * 600)} | {_quantiles(uci_dec * 600)} |",
        f"| share with no acceleration | {np.mean(np.array(acc) == 0):.2f} | {np.mean(uci['AC'] == 0):.2f} |",
        f"| share with no deceleration | {np.mean(np.array(dec) == 0):.2f} | {np.mean(uci_dec == 0):.2f} |",
        f"| share with baseline outside 110-160 bpm | {np.mean((np.array(base) < 110) | (np.array(base) > 160)):.2f} | {np.mean((uci['LB'] < 110) | (uci['LB'] > 160)):.2f} |",
        f"| records / CTGs | {len(base)} | {len(uci['LB'])} |",
    ]
    return "\n".join(lines)


def export_model(records, path: Path, *, arch: str, minutes: float, threshold: float, seed: int,
                 feature_names, cv_summary: dict) -> dict:
    """Train the bundled model on all records' windows and write it with its card."""
    import onnx

    from biosig.datasets import FeatureDataset
    from biosig.inference import attach_model_card, write_model_card
    from biosig.training import train_model

    columns = [feature_names.index(f) for f in MODEL_FEATURES]
    X, y, groups = [], [], []
    for r in records:
        w = last_windows(r, minutes)[:, columns]
        w = w[np.isfinite(w).all(axis=1)]
        X.append(w)
        y.extend(["acidaemia" if r.ph < threshold else "normal"] * len(w))
        groups.extend([r.name] * len(w))
    config = PipelineConfig.ctg_default(4.0)
    config.features = FeatureConfig(names=MODEL_FEATURES)
    config.srate, config.channels = 4.0, ["FHR", "UC"]
    fhr = config.ctg.fhr_channel
    dataset = FeatureDataset(
        X=np.concatenate(X), y=np.asarray(y).astype(str), groups=np.asarray(groups, dtype=object),
        feature_names=[f"{f}:{fhr}" for f in MODEL_FEATURES], t_end=np.full(len(y), np.nan),
        sources=[f"CTU-UHB development split, {len(records)} records (../shared/data/ctu-uhb-ctgdb)"],
    )
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    card = train_model(dataset, arch=arch, out=path, pipeline_config=config,
                       stream_info={"srate": 4.0, "channels": ["FHR", "UC"], "modality": "CTG"},
                       seed=seed, verbose=False, command=command)
    card["class_labels"] = [f"pH >= {threshold}" if c == "normal" else f"pH < {threshold}"
                            for c in card["class_names"]]
    card["metrics"]["record_level_cv"] = cv_summary
    card["training"]["labels"] = (f"umbilical artery pH < {threshold} = acidaemia; windows ending in "
                                  f"the last {minutes:g} min of each record, >= 50 % valid FHR")
    card["licence"] = ("trained on CTU-UHB (PhysioNet, non-commercial use; cite Chudacek et al. "
                       "2014, BMC Pregnancy Childbirth 14:16)")
    model = onnx.load(str(path))
    attach_model_card(model, card)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".onnx", delete=False) as tmp:
        onnx.save(model, tmp.name)
    os.chmod(tmp.name, 0o644)  # a temporary file is private; the model is not
    os.replace(tmp.name, path)
    write_model_card(path, card)
    return card


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA / "ctu-uhb-ctgdb", help="CTU-UHB folder")
    parser.add_argument("--uci", type=Path, default=DATA / "uci-cardiotocography" / "CTG_train.csv")
    parser.add_argument("--minutes", type=float, nargs="+", default=[30.0, 60.0],
                        help="spans before the end of the record to use (default 30 60)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[7.15, 7.05])
    parser.add_argument("--archs", nargs="*", default=["lda"], help="biosig architectures to add")
    parser.add_argument("--validate", action="store_true", help="also print the UCI comparison")
    parser.add_argument("--export-model", type=Path, help="write the bundled model here (.onnx)")
    parser.add_argument("--export-arch", default="lda")
    parser.add_argument("--export-threshold", type=float, default=7.15)
    parser.add_argument("--export-minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    config = PipelineConfig.ctg_default(4.0)
    feature_names = list(config.features.names)
    records = load_records(args.data, config)
    if args.validate:
        print("## CTU-UHB (biosig) vs UCI (SisPorto)\n")
        print(validation_table(records, feature_names, args.uci), "\n")
    print("## Acidaemia, record-level ROC AUC\n")
    print(acidaemia_table(records, feature_names, args.minutes, args.thresholds, args.archs, args.seed))
    if args.export_model:
        columns = [feature_names.index(f) for f in MODEL_FEATURES]
        windows = [last_windows(r, args.export_minutes)[:, columns] for r in records]
        usable = [i for i, w in enumerate(windows) if len(w)]
        y = np.array([int(records[i].ph < args.export_threshold) for i in usable])
        aucs, oof = cross_validate(records, [windows[i] for i in usable], y, args.export_arch, args.seed)
        auc, lo, hi = auc_ci(y, oof, np.random.default_rng(args.seed))
        summary = {"auc_mean": float(aucs.mean()), "auc_sd": float(aucs.std()), "auc_pooled": auc,
                   "auc_ci95": [lo, hi], "protocol": f"{N_REPEATS}x repeated stratified {N_FOLDS}-fold "
                   "by record, posteriors averaged per record", "n_records": int(len(y)),
                   "n_acidaemic": int(y.sum())}
        card = export_model(records, args.export_model, arch=args.export_arch,
                            minutes=args.export_minutes, threshold=args.export_threshold,
                            seed=args.seed, feature_names=feature_names, cv_summary=summary)
        print(f"\n-> {args.export_model}: {card['training']['n_windows']} windows, record-level CV "
              f"AUC {aucs.mean():.3f} ± {aucs.std():.3f} ({auc:.3f} [{lo:.3f}, {hi:.3f}])")
        print(json.dumps(card["metrics"]["calibration_set"], indent=1)[:400])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
