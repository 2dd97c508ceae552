"""A model's explanation on a set of windows, as numbers and figures.

What ``biosig explain`` writes and the ``--explain`` part of a ``biosig analyze`` report show:
the model's MI matrix (:func:`~biosig.explain.model_mutual_information`), the MI of each input
with the true class where windows are labelled, and each class's prototype
(:func:`~biosig.explain.inverse.inverse_inference`), drawn as a heat map and as per-class
patterns next to the class's mean input in the data. matplotlib is imported by the drawing
functions only; callers choose its backend.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from biosig._checks import BiosigError

logger = logging.getLogger(__name__)


# -- computations ----------------------------------------------------------------------------


def explain_model(model, X, y, *, bootstrap=0, n_mc=10_000, seed=0, progress=True,
                  prior="gaussian", prior_samples=None) -> dict:
    """MI, label MI and prototypes of ``model`` on windows ``X`` (labels ``y``, "" if none).

    ``prior`` and ``prior_samples`` go to :func:`~biosig.explain.inverse.inverse_inference`
    (``"empirical"`` needs the reference windows, e.g. all the recordings' windows).

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
    # No bar in a log (stderr not a terminal): its redrawn lines would only clutter it.
    steps = tqdm(total=2 + len(classes), desc="explain", unit="step",
                 disable=not (progress and sys.stderr.isatty()))
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
            found[name] = inverse_inference(model, name, prior=prior,
                                            prior_samples=prior_samples)
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


def prior_moments(model, X) -> tuple[np.ndarray, np.ndarray]:
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
    label_top = label_mi_estimate(label_mi).max() if has_labels else 0.0
    vmax = float(max(mi.mi.max(), label_top, 1e-9))
    image = axes[0].imshow(mi.mi, aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax,
                           interpolation="nearest")
    axes[0].set_xticks(range(n_classes), mi.output_names)
    axes[0].set_yticks(range(n_features), mi.feature_names, fontsize=7)
    axes[0].set_xlabel("class posterior of the model")
    axes[0].set_title(f"I(feature; posterior), n = {mi.n_samples}", fontsize=9)
    if has_labels:
        axes[1].imshow(label_mi_estimate(label_mi)[:, None], aspect="auto", cmap="viridis",
                       vmin=0.0, vmax=vmax, interpolation="nearest")
        axes[1].set_xticks([0], ["labels"])
        axes[1].set_title("I(feature; class)", fontsize=9)
    fig.colorbar(image, ax=list(axes), label="mutual information (nats)", shrink=0.6)
    fig.suptitle(f"Which inputs each class depends on — I(X; Ĉ) = {mi.class_mi:.2f} nats",
                 fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def label_mi_estimate(label_mi) -> np.ndarray:
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
