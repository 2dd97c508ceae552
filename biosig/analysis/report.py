"""The HTML report of ``biosig analyze``: one self-contained file, figures embedded as PNG.

``report.html`` opens in any browser from disk (no server, no script, no external file): every
figure is a ``data:image/png;base64`` image, and the same figures are also written to
``figures/*.png`` for papers and slides. It shows:

- the run: model, recordings analysed, skipped and failed (with the reason), and the table
  across recordings (windows, accuracy, OOD share, signal quality);
- posterior time lines (stacked class posteriors over time, with the true label and the
  decision as colour strips) of the first :data:`MAX_TIMELINES` recordings;
- the confusion matrix and the reliability diagram over all labelled windows (when labels
  exist);
- the share of windows out of the training distribution per recording, against the share the
  model's threshold lets through on its training data;
- the class shares and signal-quality shares per recording;
- with ``explain``, the mutual-information heat map and the class prototypes of the model
  (:mod:`biosig.explain`), computed on windows drawn from the analysed recordings.

Figures are drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import io
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from biosig import __version__
from biosig.analysis import output
from biosig.analysis.batch import DECISION_COLUMN, LABEL_COLUMN, TIME_COLUMN, posterior_column

logger = logging.getLogger(__name__)

#: Recordings whose posterior time lines are drawn.
MAX_TIMELINES = 8
#: Recordings shown in the per-recording bar charts.
MAX_BARS = 40
#: Points per time line (block means beyond this).
MAX_POINTS = 1500
#: Windows drawn for the explanation figures.
EXPLAIN_WINDOWS = 2000
FIGURE_DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window or need a display
    import matplotlib.pyplot as plt

    return plt


def class_colours(n: int) -> list:
    """One distinct colour per class (tab10, tab20, then a sampled colour map)."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](k) for k in range(n)]
    if n <= 20:
        return [colormaps["tab20"](k) for k in range(n)]
    return [colormaps["turbo"](k / max(n - 1, 1)) for k in range(n)]


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
    _pyplot().close(fig)
    return buffer.getvalue()


def _time_axis(t: np.ndarray) -> tuple[np.ndarray, str]:
    """Time from the first window, in minutes for long recordings, else seconds."""
    t = t - t[0] if len(t) else t
    if len(t) and t[-1] > 600:
        return t / 60.0, "time (min)"
    return t, "time (s)"


def _block_means(values: np.ndarray, n_points: int) -> np.ndarray:
    """Means of consecutive blocks so that at most ``n_points`` remain (rows = time)."""
    n = values.shape[0]
    if n <= n_points:
        return values
    size = int(np.ceil(n / n_points))
    usable = (n // size) * size
    head = values[:usable].reshape(n // size, size, *values.shape[1:]).mean(axis=1)
    if usable == n:
        return head
    return np.concatenate([head, values[usable:].mean(axis=0, keepdims=True)])


def _block_modes(codes: np.ndarray, n_points: int) -> np.ndarray:
    """Most frequent code of consecutive blocks (for the label and decision strips)."""
    n = codes.shape[0]
    if n <= n_points:
        return codes
    size = int(np.ceil(n / n_points))
    # Counts of every code in every block at once (codes are small integers); ties go to the
    # smallest code, as np.unique + argmax would give.
    low = int(codes.min())
    width = int(codes.max()) - low + 1
    blocks = np.arange(n) // size
    counts = np.bincount(blocks * width + (codes - low), minlength=(blocks[-1] + 1) * width)
    return counts.reshape(-1, width).argmax(axis=1) + low


def load_timeline(out, name: str, class_names) -> dict:
    """Time, posteriors, true-label and decision indices of one recording (-1: none)."""
    import pyarrow.parquet as pq

    columns = [TIME_COLUMN, LABEL_COLUMN, DECISION_COLUMN] + [posterior_column(c) for c in class_names]
    table = pq.read_table(output.recording_dir(out, name) / output.WINDOWS_PARQUET, columns=columns)
    lookup = {c: k for k, c in enumerate(class_names)}

    def codes(column):
        return np.asarray([lookup.get(v, -1) if v is not None else -1
                           for v in table.column(column).to_pylist()], dtype=np.int64)

    return {
        "name": name,
        "t": table.column(TIME_COLUMN).to_numpy(),
        "posteriors": np.column_stack([table.column(posterior_column(c)).to_numpy()
                                       for c in class_names]),
        "label": codes(LABEL_COLUMN),
        "has_labels": table.column(LABEL_COLUMN).null_count < table.num_rows,
        "decision": codes(DECISION_COLUMN),
    }


# -- figures ----------------------------------------------------------------------------------


def figure_timelines(timelines, class_names, class_labels) -> bytes:
    """Stacked posteriors over time per recording, with label and decision strips."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap

    colours = class_colours(len(class_names))
    strip_cmap = ListedColormap([(0.93, 0.93, 0.93, 1.0)] + list(colours))
    n = len(timelines)
    fig = plt.figure(figsize=(11, 2.5 * n + 0.9), layout="constrained")
    grid = fig.add_gridspec(2 * n, 1, height_ratios=[4, 1] * n)
    for row, item in enumerate(timelines):
        t, unit = _time_axis(item["t"])
        t_plot = _block_means(t, MAX_POINTS)
        posteriors = np.nan_to_num(_block_means(item["posteriors"], MAX_POINTS))
        ax = fig.add_subplot(grid[2 * row])
        ax.stackplot(t_plot, posteriors.T, colors=colours, linewidth=0)
        ax.set_xlim(t_plot[0], t_plot[-1] if t_plot[-1] > t_plot[0] else t_plot[0] + 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("posterior")
        ax.set_title(item["name"], loc="left", fontsize=10)
        ax.tick_params(labelbottom=False)
        strips = [_block_modes(item["decision"], MAX_POINTS)]
        names = ["decision"]
        if item["has_labels"]:
            strips.insert(0, _block_modes(item["label"], MAX_POINTS))
            names.insert(0, "true label")
        strip_ax = fig.add_subplot(grid[2 * row + 1], sharex=ax)
        extent = (t_plot[0], t_plot[-1] if t_plot[-1] > t_plot[0] else t_plot[0] + 1,
                  len(strips) - 0.5, -0.5)
        strip_ax.imshow(np.vstack(strips) + 1, aspect="auto", cmap=strip_cmap,
                        vmin=0, vmax=len(class_names), interpolation="nearest", extent=extent)
        strip_ax.set_yticks(range(len(strips)), names, fontsize=8)
        strip_ax.set_xlabel(unit if row == n - 1 else "")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours]
    legend_names = [f"{c} {lab}" if lab != c else c for c, lab in zip(class_names, class_labels)]
    fig.legend(handles, legend_names, loc="outside upper center", ncol=min(len(class_names), 10),
               fontsize=8, title="class (grey strip: none / unknown)", title_fontsize=8)
    return _png(fig)


def figure_confusion(confusion, class_names, accuracy) -> bytes:
    """Row-normalised confusion matrix with counts; rows true, columns predicted."""
    plt = _pyplot()
    confusion = np.asarray(confusion, dtype=float)
    totals = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)
    k = len(class_names)
    size = 2.5 + 0.55 * k
    fig, ax = plt.subplots(figsize=(size + 1.2, size), layout="constrained")
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if confusion[i, j] == 0:
                continue
            colour = "white" if share[i, j] > 0.6 else "black"
            ax.text(j, i, f"{share[i, j]:.0%}\n{int(confusion[i, j])}", ha="center",
                    va="center", fontsize=7 if k > 8 else 8, color=colour)
    ax.set_xticks(range(k), class_names)
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted class (most probable)")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion over {int(confusion.sum())} labelled windows, "
                 f"accuracy {accuracy:.1%}", fontsize=10)
    fig.colorbar(image, ax=ax, label="share of the true class's windows", shrink=0.8)
    return _png(fig)


def figure_reliability(reliability, ece) -> bytes:
    """Reliability diagram (accuracy against confidence per bin) above the bins' counts."""
    plt = _pyplot()
    edges = np.asarray(reliability["edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    width = np.diff(edges)
    accuracy = np.array([np.nan if v is None else v for v in reliability["accuracy"]])
    confidence = np.array([np.nan if v is None else v for v in reliability["confidence"]])
    count = np.asarray(reliability["count"])
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6), height_ratios=[3, 1], sharex=True,
                                   layout="constrained")
    used = count > 0
    ax.bar(centres[used], accuracy[used], width=width[used] * 0.9, color="tab:blue",
           edgecolor="white", label="accuracy in bin")
    # The bin's mean confidence as a tick: the gap to the bar's top is the miscalibration.
    ax.scatter(centres[used], confidence[used], marker="_", s=260, linewidths=2.2,
               color="tab:red", zorder=3, label="mean confidence in bin")
    ax.plot([0, 1], [0, 1], color="0.3", ls="--", lw=1, label="perfect calibration")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability of the top posterior, ECE {ece:.3f}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    hist.bar(centres, count, width=width * 0.9, color="0.5")
    hist.set_yscale("log" if count.max(initial=0) > 50 * max(np.median(count[used]), 1) else "linear")
    hist.set_xlabel("confidence (top posterior)")
    hist.set_ylabel("windows")
    return _png(fig)


def _bar_height(n: int) -> float:
    return 1.9 + 0.3 * n


def figure_ood(summaries, expected_share) -> bytes:
    """Share of windows out of distribution (and without decision) per recording."""
    plt = _pyplot()
    names = [s["name"] for s in summaries]
    ood = np.array([100 * (s["ood_share"] or 0.0) for s in summaries])
    rejected = np.array([100 * (s["rejected_share"] or 0.0) for s in summaries])
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, _bar_height(len(names))), layout="constrained")
    ax.barh(y - 0.2, ood, height=0.4, color="tab:purple", label="out of distribution")
    ax.barh(y + 0.2, rejected, height=0.4, color="0.6", label="no decision (rejected)")
    if expected_share is not None:
        ax.axvline(100 * expected_share, color="tab:purple", ls="--", lw=1,
                   label=f"expected on training data ({100 * expected_share:.1f} %)")
    for yi, value in zip(y, ood):
        ax.text(value, yi - 0.2, f" {value:.1f} %", va="center", fontsize=7)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("share of windows (%)")
    ax.set_xlim(0, max(5.0, float(max(ood.max(initial=0), rejected.max(initial=0))) * 1.15))
    ax.set_title("Windows unlike the training data (OOD score above the model's threshold)",
                 fontsize=10)
    fig.legend(fontsize=8, loc="outside lower center", ncol=3)
    return _png(fig)


def figure_class_shares(summaries, class_names, class_labels) -> bytes:
    """Stacked share of windows decided for each class, per recording."""
    plt = _pyplot()
    colours = class_colours(len(class_names))
    names = [s["name"] for s in summaries]
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, _bar_height(len(names)) + 0.4), layout="constrained")
    left = np.zeros(len(names))
    for k, name in enumerate(class_names):
        share = np.array([100 * s["class_shares"].get(name, 0.0) for s in summaries])
        label = f"{name} {class_labels[k]}" if class_labels[k] != name else name
        ax.barh(y, share, left=left, color=colours[k], label=label, height=0.7)
        left += share
    none = np.array([100 * s["no_decision_share"] for s in summaries])
    ax.barh(y, none, left=left, color="0.85", label="none", height=0.7)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of windows (%)")
    ax.set_title("Class shares: windows decided for each class", fontsize=10)
    fig.legend(fontsize=7, loc="outside right upper")
    return _png(fig)


QUALITY_KEYS = (("nan_share", "non-finite"), ("clipping_share", "clipped"),
                ("flat_share", "flat"), ("dropout_share", "dropped"))


def figure_quality(summaries) -> bytes:
    """Signal-quality shares per recording (grouped bars, %)."""
    plt = _pyplot()
    names = [s["name"] for s in summaries]
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, _bar_height(len(names)) + 0.3), layout="constrained")
    height = 0.8 / len(QUALITY_KEYS)
    colours = ["tab:red", "tab:orange", "tab:olive", "tab:brown"]
    top = 0.0
    for k, (key, label) in enumerate(QUALITY_KEYS):
        values = np.array([100 * (s["quality"].get(key) or 0.0) for s in summaries])
        values = np.nan_to_num(values)
        top = max(top, float(values.max(initial=0)))
        ys = y - 0.4 + height * (k + 0.5)
        ax.barh(ys, values, height=height, color=colours[k], label=label)
        for yi, value in zip(ys, values):
            if value > 0:
                ax.text(value, yi, f" {value:.2g} %", va="center", fontsize=6)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, top * 1.3))
    ax.set_xlabel("share of samples (flat: of 1-s channel blocks) (%)")
    ax.set_title("Signal quality of the channels the model uses", fontsize=10)
    fig.legend(fontsize=8, loc="outside lower center", ncol=4)
    return _png(fig)


def explanation_figures(model, out, summaries, progress: bool) -> dict[str, bytes]:
    """MI heat map and prototypes from windows of the analysed recordings (biosig.explain)."""
    import pyarrow.parquet as pq

    from biosig.explain.report import (
        class_data_means,
        explain_model,
        plot_mi_heatmap,
        plot_prototypes,
        prior_moments,
    )

    features, labels = [], []
    for summary in summaries:
        path = output.recording_dir(out, summary["name"]) / output.WINDOWS_PARQUET
        table = pq.read_table(path, columns=["flagged", LABEL_COLUMN, *model.feature_names])
        keep = ~table.column("flagged").to_numpy(zero_copy_only=False)
        features.append(np.column_stack([table.column(c).to_numpy() for c in model.feature_names])[keep])
        y = np.asarray(["" if v is None else v for v in table.column(LABEL_COLUMN).to_pylist()])
        labels.append(y[keep])
    X_all, y_all = np.vstack(features), np.concatenate(labels).astype(str)
    y_all[~np.isin(y_all, [str(c) for c in model.classes_])] = ""
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(X_all), min(EXPLAIN_WINDOWS, len(X_all)), replace=False))
    X, y = X_all[pick], y_all[pick]
    explained = explain_model(model, X, y, n_mc=2000, seed=0, progress=progress)
    prior_mean, prior_var = prior_moments(model, X_all)
    figures = {}
    buffer = io.BytesIO()
    plot_mi_heatmap(explained["mi"], explained["label_mi"], buffer)
    figures["mi"] = buffer.getvalue()
    buffer = io.BytesIO()
    plot_prototypes(explained["prototypes"], class_data_means(model, X_all, y_all), prior_mean,
                    prior_var, model.feature_names, buffer)
    figures["prototypes"] = buffer.getvalue()
    return figures


# -- the page ---------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1150px;
color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.failed td{background:#fde8e8}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555;max-width:60em}.note{color:#555;font-size:.9em}
"""


def _fmt(value, kind: str = "") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if kind == "%":
        return f"{100 * value:.1f}"
    if kind == "pct_small":
        return f"{100 * value:.2f}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return html.escape(str(value))


def _figure_html(title: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure><img alt=\"{html.escape(title)}\" src=\"data:image/png;base64,{data}\">"
            f"<figcaption>{caption}</figcaption></figure>")


def _recordings_table(summaries) -> str:
    head = ("<tr><th class=l>recording</th><th>status</th><th>duration (s)</th><th>windows</th>"
            "<th>labelled</th><th>accuracy</th><th>ECE</th><th>top class</th><th>OOD %</th>"
            "<th>no decision %</th><th>non-finite %</th><th>clipped %</th><th>flat %</th>"
            "<th>dropped %</th><th>windows/s</th></tr>")
    rows = []
    for s in summaries:
        if s["status"] != "ok":
            rows.append(f"<tr class=failed><td class=l>{html.escape(s['name'])}</td>"
                        f"<td class=l colspan=14>failed: {html.escape(s['error'])}</td></tr>")
            continue
        lab = s.get("labels") or {}
        shares = s["class_shares"]
        top = max(shares, key=shares.get) if shares else None
        q = s["quality"]
        rows.append(
            f"<tr><td class=l title=\"{html.escape(s['source'])}\">{html.escape(s['name'])}</td>"
            f"<td>ok</td><td>{s['stream']['duration_s']:.1f}</td><td>{s['n_windows']}</td>"
            f"<td>{_fmt(lab.get('evaluated_windows'))}</td><td>{_fmt(lab.get('accuracy'), '%')}</td>"
            f"<td>{_fmt(lab.get('ece'))}</td>"
            f"<td>{_fmt(top)} ({_fmt(shares.get(top), '%')} %)</td>"
            f"<td>{_fmt(s['ood_share'], '%')}</td><td>{_fmt(s['rejected_share'], '%')}</td>"
            f"<td>{_fmt(q['nan_share'], 'pct_small')}</td><td>{_fmt(q['clipping_share'], 'pct_small')}</td>"
            f"<td>{_fmt(q['flat_share'], 'pct_small')}</td><td>{_fmt(q['dropout_share'], 'pct_small')}</td>"
            f"<td>{_fmt(s.get('windows_per_s'))}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def build_figures(model, out, summaries, agg, *, explain: bool, progress: bool) -> list:
    """The report's figures: a list of (file stem, title, png bytes, caption)."""
    ok = [s for s in summaries if s["status"] == "ok"]
    class_names = [str(c) for c in model.classes_]
    class_labels = list(model.card.get("class_labels", class_names))
    figures = []
    if not ok:
        return figures
    shown = ok[:MAX_TIMELINES]
    timelines = [load_timeline(out, s["name"], class_names) for s in shown]
    more = f" The first {len(shown)} of {len(ok)} recordings are shown." if len(ok) > len(shown) else ""
    figures.append(("analyze_timelines", "Posterior time lines", figure_timelines(
        timelines, class_names, class_labels),
        "Class posteriors of every window, stacked (block means where windows are dense); "
        "below, the true label (where one label covers the window) and the model's decision "
        f"(grey: none).{more}"))
    if "confusion" in agg:
        figures.append(("analyze_confusion", "Confusion matrix", figure_confusion(
            agg["confusion"], class_names, agg["accuracy"]),
            "Rows: true class; columns: the most probable class. Colour and percentage: share "
            "of the row; number: windows. Windows whose label is not a class of the model, or "
            "that span a label change, are left out."))
        figures.append(("analyze_reliability", "Reliability diagram", figure_reliability(
            agg["reliability"], agg["ece"]),
            "Top posterior (confidence) in 15 equal bins against the share of those windows "
            "classified correctly; a calibrated model follows the diagonal. ECE: the "
            "bin-weighted mean gap. Below: windows per bin."))
    bars = ok[:MAX_BARS]
    more_bars = f" The first {len(bars)} of {len(ok)} recordings are shown." if len(ok) > len(bars) else ""
    if all(s["ood_share"] is not None for s in bars):
        percentile = model.card["ood"].get("percentile")
        expected = None if percentile is None else 1 - percentile / 100
        figures.append(("analyze_ood", "Out-of-distribution share", figure_ood(bars, expected),
                        "Share of windows whose OOD score exceeds the model's threshold (the "
                        f"{percentile:g}th percentile of its training data's scores), and of "
                        f"windows left without a decision.{more_bars}"))
    figures.append(("analyze_class_shares", "Class shares", figure_class_shares(
        bars, class_names, class_labels), f"Share of windows decided for each class.{more_bars}"))
    figures.append(("analyze_quality", "Signal quality", figure_quality(bars),
                    "Non-finite samples, samples held at the channel's extreme (clipping), "
                    "1-s channel blocks without any change (flat) and samples missing from the "
                    f"timestamps (dropped), over the channels the model uses.{more_bars}"))
    if explain:
        explained = explanation_figures(model, out, ok, progress)
        figures.append(("analyze_mi", "Mutual information", explained["mi"],
                        "Mutual information between each input feature and each class posterior "
                        f"of the model, on up to {EXPLAIN_WINDOWS} windows drawn from the "
                        "analysed recordings (and with the true labels, where known)."))
        figures.append(("analyze_prototypes", "Class prototypes", explained["prototypes"],
                        "The input the model expects for each class (inverse inference), next "
                        "to the class's mean input in the analysed data."))
    return figures


def write_report(out, model, summaries, agg, *, explain: bool = False, progress: bool = True) -> Path:
    """Write ``report.html`` and ``figures/*.png`` into ``out`` (atomically); returns the page."""
    out = Path(out)
    figures = build_figures(model, out, summaries, agg, explain=explain, progress=progress)
    figure_dir = out / "figures"
    figure_dir.mkdir(exist_ok=True)
    for stem, _, png, _ in figures:
        output.atomic_write_bytes(figure_dir / f"{stem}.png", png)
    failed = [s for s in summaries if s["status"] != "ok"]
    ok = [s for s in summaries if s["status"] == "ok"]
    card = model.card
    facts = [
        ("model", f"{html.escape(model.path.name)} ({html.escape(card['arch'])}, "
                  f"{html.escape(card['modality'])}, {len(model.channels)} ch @ {model.srate:g} Hz, "
                  f"{model.n_features} features, {model.n_classes} classes)"),
        ("recordings", f"{len(ok)} analysed, {len(failed)} failed"),
        ("windows", f"{agg.get('n_windows', 0):,}"),
    ]
    if "accuracy" in agg:
        facts.append(("accuracy (labelled windows)",
                      f"{agg['accuracy']:.1%} of {agg['evaluated_windows']:,}, ECE {agg['ece']:.3f}"))
    if "ood_share" in agg:
        facts.append(("out of distribution", f"{100 * agg['ood_share']:.1f} % of windows"))
    facts.append(("inference", html.escape(ok[0]["provider"]) if ok else "–"))
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>biosig analyze: {html.escape(model.path.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>biosig analyze: {html.escape(model.path.name)}</h1>",
        f"<p class=note>biosig {__version__}, "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. Per-window results: "
        f"<code>recordings/&lt;name&gt;/windows.parquet</code>; table across recordings: "
        f"<code>summary.csv</code>.</p>",
        "<table>" + "".join(f"<tr><th class=l>{k}</th><td class=l>{v}</td></tr>" for k, v in facts)
        + "</table>",
    ]
    if failed:
        items = "".join(f"<li><code>{html.escape(s['source'])}</code>: {html.escape(s['error'])}</li>"
                        for s in failed)
        parts.append(f"<h2>Failed recordings</h2><ul>{items}</ul>")
    parts.append("<h2>Recordings</h2>" + _recordings_table(summaries))
    for _, title, png, caption in figures:
        parts.append(f"<h2>{html.escape(title)}</h2>" + _figure_html(title, png, caption))
    parts.append("</body></html>\n")
    return output.atomic_write_text(out / "report.html", "\n".join(parts))
