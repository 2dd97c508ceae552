"""``biosig explain``: which inputs each class depends on, and what input each class expects."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from biosig._checks import BiosigError, check_int

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Explain a trained model (ONNX) on recordings, and write into DIR (created if needed; only these
three files are replaced, anything else in DIR is left alone):

  mi_heatmap.png   mutual information (nats) between every input feature and every class
                   posterior of the model, over the recordings' windows (Gaussian mixtures
                   fitted by EM); with labelled recordings, a last column gives I(feature; true
                   class) from the labels
  prototypes.png   per class, the input the model expects (inverse inference, mean field with
                   the training data's Gaussian prior): the envelope pattern over channels next
                   to the class's mean input in the data, and every feature in training standard
                   deviations, grouped by feature kind (bars: mean, whiskers: +- std)
  explain.json     all the numbers (MI matrix, bootstrap intervals with --bootstrap, class MI,
                   prototypes)

Recordings are processed with the pipeline settings stored in the model and must match its
sampling rate and channels. Labels are optional: the model's MI uses its own posteriors; a
recording's label markers add the label MI and the per-class data means (otherwise the windows
the model assigns to a class stand in for it).
"""

#: Files written into DIR.
OUTPUT_FILES = ("mi_heatmap.png", "prototypes.png", "explain.json")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "explain", help="mutual-information heat map and class prototypes of a model",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="model file (.onnx)")
    parser.add_argument("data", nargs="+", help="recordings or folders of recordings")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--bootstrap", type=int, default=0,
                        help="bootstrap resamples for MI confidence intervals (default 0: none)")
    parser.add_argument("--max-windows", type=int, default=2000,
                        help="windows used for MI, drawn at random (default 2000; 0: all)")
    parser.add_argument("--mc-draws", type=int, default=10_000,
                        help="Monte Carlo draws per MI estimate (default 10000; 2000 is ~5x "
                             "faster, standard error ~0.02 nats)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    parser.set_defaults(func=run)


# -- data ------------------------------------------------------------------------------------


def load_windows(model, paths, *, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Feature vectors of every usable window of the recordings, and their labels.

    Labelled recordings give their single-label windows with the label; unlabelled ones give
    all windows without non-finite input, labelled ``""``.

    Returns
    -------
    X : ndarray, shape (n_windows, n_features)
    y : ndarray of str, shape (n_windows,)
    """
    from tqdm import tqdm

    from biosig.datasets import recording_dataset
    from biosig.io import iter_inputs, read_recording
    from biosig.stream.pipeline import process_recording

    inputs = iter_inputs(paths)
    if not inputs:
        raise BiosigError("no recordings found in the given inputs")
    config = model.pipeline_config()
    features, labels = [], []
    for path in tqdm(inputs, desc="features", unit="file", disable=not progress):
        recording = read_recording(path)
        stream = model.check_recording(recording)
        markers = recording.labels()
        if markers is not None and len(markers):
            part = recording_dataset(recording, config, stream_name=stream.name)
            features.append(part.X)
            labels.append(np.asarray(part.y, dtype=str))
        else:
            results = process_recording(stream, config)
            keep = ~results.unusable
            features.append(results.features[keep])
            labels.append(np.full(int(keep.sum()), "", dtype=object).astype(str))
    X, y = np.vstack(features), np.concatenate(labels)
    if X.shape[0] < 20:
        raise BiosigError(f"the recordings give {X.shape[0]} windows; at least 20 are needed")
    return X, y


def _subsample(X, y, max_windows: int, seed: int):
    if max_windows == 0 or X.shape[0] <= max_windows:
        return X, y
    keep = np.sort(np.random.default_rng(seed).choice(X.shape[0], max_windows, replace=False))
    return X[keep], y[keep]


# -- computations ----------------------------------------------------------------------------


def explain_model(model, X, y, *, bootstrap=0, n_mc=10_000, seed=0, progress=True) -> dict:
    """MI, label MI and prototypes of ``model`` on windows ``X`` (labels ``y``, "" if none).

    Returns
    -------
    dict
        ``mi`` (:class:`~biosig.explain.ModelMIResult`), ``label_mi`` (ndarray or
        :class:`~biosig.explain.MIWithCI` or None), ``prototypes`` ({class: Prototype}).
    """
    from tqdm import tqdm

    from biosig.explain import model_mutual_information
    from biosig.explain.inverse import inverse_inference

    classes = [str(c) for c in model.classes_]
    steps = tqdm(total=2 + len(classes), desc="explain", unit="step", disable=not progress)
    with steps:
        steps.set_postfix_str("model MI")
        mi = model_mutual_information(
            model.predict_proba, X, feature_names=model.feature_names, class_names=classes,
            return_ci=bootstrap > 0, n_bootstrap=max(bootstrap, 10), n_mc=n_mc,
            random_state=seed, n_jobs=-1)
        steps.update()
        steps.set_postfix_str("label MI")
        label_mi = _label_mi(X, y, bootstrap, n_mc, seed)
        steps.update()
        found = {}
        for name in classes:
            steps.set_postfix_str(f"prototype {name}")
            found[name] = inverse_inference(model, name)
            steps.update()
    return {"mi": mi, "label_mi": label_mi, "prototypes": found}


def _label_mi(X, y, bootstrap: int, n_mc: int, seed: int):
    """``I(X_i; true class)`` on the labelled windows, or None if there are too few."""
    from biosig.explain import class_mutual_information

    labelled = y != ""
    values, counts = np.unique(y[labelled], return_counts=True)
    if values.size < 2 or labelled.sum() < 20:
        return None
    try:
        return class_mutual_information(X[labelled], y[labelled], return_ci=bootstrap > 0,
                                        n_bootstrap=max(bootstrap, 10), n_mc=n_mc,
                                        random_state=seed, n_jobs=-1)
    except BiosigError as err:  # e.g. a class with too few windows: the rest still stands
        logger.warning("no label MI: %s", err)
        return None


def _prior_moments(model, X) -> tuple[np.ndarray, np.ndarray]:
    """Training mean and variance from the card, else those of ``X`` (the standard units)."""
    training = model.card.get("training") or {}
    if training.get("feature_mean") is not None and training.get("feature_var") is not None:
        return np.asarray(training["feature_mean"]), np.asarray(training["feature_var"])
    return X.mean(axis=0), X.var(axis=0)


def class_data_means(model, X, y) -> dict[str, np.ndarray]:
    """Mean input per class: by label where labelled, else by the model's most likely class."""
    classes = [str(c) for c in model.classes_]
    if (y != "").any():
        groups = y
    else:
        groups = np.asarray(classes)[np.argmax(model.predict_proba(X), axis=1)]
    return {c: X[groups == c].mean(axis=0) for c in classes if (groups == c).any()}


# -- figures ---------------------------------------------------------------------------------


def _feature_kind(name: str) -> str:
    return name.split(":", 1)[0]


def _feature_channel(name: str) -> str:
    return name.split(":", 1)[1] if ":" in name else name


def plot_mi_heatmap(mi, label_mi, path: Path) -> None:
    """Inputs x classes heat map in nats; a separate last column for the label MI."""
    import matplotlib.pyplot as plt

    n_features, n_classes = mi.mi.shape
    has_labels = label_mi is not None
    width = 3.0 + 0.55 * (n_classes + (1.5 if has_labels else 0))
    fig = plt.figure(figsize=(width, 1.6 + 0.2 * n_features), layout="constrained")
    ratios = [n_classes, 1.2] if has_labels else [n_classes]
    axes = fig.subplots(1, len(ratios), width_ratios=ratios, sharey=True, squeeze=False)[0]
    vmax = float(max(mi.mi.max(), _estimate(label_mi).max() if has_labels else 0.0, 1e-9))
    image = axes[0].imshow(mi.mi, aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax,
                           interpolation="nearest")
    axes[0].set_xticks(range(n_classes), mi.output_names)
    axes[0].set_yticks(range(n_features), mi.feature_names, fontsize=7)
    axes[0].set_xlabel("class posterior of the model")
    axes[0].set_title(f"I(feature; posterior), n = {mi.n_samples}", fontsize=9)
    if has_labels:
        axes[1].imshow(_estimate(label_mi)[:, None], aspect="auto", cmap="viridis", vmin=0.0,
                       vmax=vmax, interpolation="nearest")
        axes[1].set_xticks([0], ["labels"])
        axes[1].set_title("I(feature; class)", fontsize=9)
    fig.colorbar(image, ax=list(axes), label="mutual information (nats)", shrink=0.6)
    fig.suptitle(f"Which inputs each class depends on — I(X; Ĉ) = {mi.class_mi:.2f} nats",
                 fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _estimate(label_mi) -> np.ndarray:
    return np.asarray(getattr(label_mi, "estimate", label_mi))


def _pattern_kind(feature_names) -> str:
    """The feature kind shown as the pattern over channels: the envelope if the model has it."""
    kinds = list(dict.fromkeys(_feature_kind(n) for n in feature_names))
    return "env_mean" if "env_mean" in kinds else kinds[0]


def plot_prototypes(prototypes, data_means, prior_mean, prior_var, feature_names,
                    path: Path) -> None:
    """Per class: pattern over channels (prototype vs data) and all features in prior SDs."""
    import matplotlib.pyplot as plt

    names = list(feature_names)
    pattern = _pattern_kind(names)
    pattern_index = [i for i, n in enumerate(names) if _feature_kind(n) == pattern]
    channels = [_feature_channel(names[i]) for i in pattern_index]
    prior_sd = np.sqrt(np.maximum(prior_var, 1e-300))
    classes = list(prototypes)
    fig, axes = plt.subplots(len(classes), 2, figsize=(15, 2.1 * len(classes) + 0.8),
                             width_ratios=[1, 2.6], squeeze=False, layout="constrained")
    for row, name in enumerate(classes):
        proto = prototypes[name]
        _plot_pattern(axes[row, 0], proto, data_means.get(name), pattern_index, channels)
        axes[row, 0].set_ylabel(f"class {name}\n{pattern}")
        _plot_standardised(axes[row, 1], proto, prior_mean, prior_sd, names)
        axes[row, 1].set_title(
            f"p({name} | prototype) = {proto.target_probability:.2f}, "
            f"KL to prior {proto.kl_to_prior:.1f} nats", fontsize=8, loc="right", pad=12)
    axes[0, 0].set_title(f"envelope pattern over channels ({pattern})", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xticks(range(len(channels)), channels, rotation=45, fontsize=7)
    fig.suptitle("What input the model expects for each class (mean field, ± std)", fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_pattern(ax, proto, data_mean, index, channels) -> None:
    x = np.arange(len(channels))
    ax.bar(x - 0.2, proto.mean[index], width=0.4, yerr=proto.std[index], capsize=2,
           ecolor="0.4", error_kw={"elinewidth": 0.7}, color="tab:blue", label="prototype")
    if data_mean is not None:
        ax.bar(x + 0.2, data_mean[index], width=0.4, color="tab:orange", label="data mean")
    ax.set_xticks(x, [])  # channel names once, under the last row
    ax.tick_params(labelsize=7)


def _plot_standardised(ax, proto, prior_mean, prior_sd, names) -> None:
    """Bars of (mean - prior mean) / prior sd, coloured and separated by feature kind."""
    kinds = list(dict.fromkeys(_feature_kind(n) for n in names))
    colours = dict(zip(kinds, plt_colours(len(kinds))))
    z = (proto.mean - prior_mean) / prior_sd
    err = proto.std / prior_sd
    x = np.arange(len(names)) + np.array([kinds.index(_feature_kind(n)) for n in names])
    # Light whiskers: the posterior spread is often close to the prior's (1 SD) and would
    # otherwise hide the shifts of the means, which are what the plot is for.
    ax.bar(x, z, yerr=err, capsize=0, ecolor="0.75", error_kw={"elinewidth": 0.6},
           color=[colours[_feature_kind(n)] for n in names])
    ax.axhline(0.0, color="0.5", lw=0.6)
    ax.set_ylabel("training SDs", fontsize=8)
    ax.tick_params(labelsize=6)
    if ax.get_subplotspec().is_last_row():
        ax.set_xticks(x, names, rotation=90, fontsize=6)
    else:
        ax.set_xticks(x, [])
        for kind in kinds:  # kind names once, at the top row's group centres
            centre = x[[i for i, n in enumerate(names) if _feature_kind(n) == kind]].mean()
            if ax.get_subplotspec().is_first_row():
                ax.text(centre, 1.02, kind, transform=ax.get_xaxis_transform(), ha="center",
                        fontsize=7, color=colours[kind])


def plt_colours(n: int) -> list:
    import matplotlib.pyplot as plt

    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return [cycle[k % len(cycle)] for k in range(n)]


# -- output ----------------------------------------------------------------------------------


def explanation_json(model_path, data, explained, X, y, data_means) -> dict:
    label_mi = explained["label_mi"]
    label_part = None
    if label_mi is not None:
        label_part = {"units": "nats", "feature_names": list(explained["mi"].feature_names),
                      "mi": _estimate(label_mi).tolist()}
        if hasattr(label_mi, "lower"):
            label_part["lower"] = label_mi.lower.tolist()
            label_part["upper"] = label_mi.upper.tolist()
    return {
        "model": str(model_path),
        "data": [str(d) for d in data],
        "n_windows": int(X.shape[0]),
        "labelled_windows": int((y != "").sum()),
        "mi": explained["mi"].to_dict(),
        "label_mi": label_part,
        "prototypes": {name: p.to_dict() for name, p in explained["prototypes"].items()},
        "class_data_means": {name: m.tolist() for name, m in data_means.items()},
    }


def _prepare_out(out) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BiosigError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window or need a display

    from biosig.inference import OnnxModel

    check_int(args.bootstrap, "--bootstrap", minimum=0)
    check_int(args.max_windows, "--max-windows", minimum=0)
    check_int(args.mc_draws, "--mc-draws", minimum=100)
    if 0 < args.bootstrap < 10:
        raise BiosigError(f"--bootstrap needs at least 10 resamples, got {args.bootstrap}")
    out = _prepare_out(args.out)
    model = OnnxModel(args.model)
    progress = not args.quiet
    X_all, y_all = load_windows(model, args.data, progress=progress)
    X, y = _subsample(X_all, y_all, args.max_windows, args.seed)
    explained = explain_model(model, X, y, bootstrap=args.bootstrap, n_mc=args.mc_draws,
                              seed=args.seed, progress=progress)
    prior_mean, prior_var = _prior_moments(model, X_all)
    data_means = class_data_means(model, X_all, y_all)
    plot_mi_heatmap(explained["mi"], explained["label_mi"], out / "mi_heatmap.png")
    plot_prototypes(explained["prototypes"], data_means, prior_mean, prior_var,
                    model.feature_names, out / "prototypes.png")
    document = explanation_json(args.model, args.data, explained, X, y, data_means)
    (out / "explain.json").write_text(json.dumps(document, indent=1))
    if progress:
        _print_summary(explained, out)
    return 0


def _print_summary(explained, out: Path) -> None:
    mi = explained["mi"]
    top = ", ".join(f"{name} {value:.2f}" for name, value in mi.ranking()[:5])
    print(f"I(X; predicted class) = {mi.class_mi:.3f} nats over {mi.n_samples} windows")
    print(f"most informative inputs (nats): {top}")
    for name, proto in explained["prototypes"].items():
        state = "" if proto.converged else " (not converged)"
        print(f"prototype {name}: p = {proto.target_probability:.2f}, "
              f"KL {proto.kl_to_prior:.1f} nats{state}")
    print(f"wrote {', '.join(str(out / f) for f in OUTPUT_FILES)}")
