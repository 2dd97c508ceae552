"""Draw one CTG record with biosig's cleaned FHR, baseline trace, events and contractions.

The events and baseline come from the same streaming chain the pipeline runs
(:func:`biosig.ctg.analyse_stream`), so the figure shows what a live view would draw.

Usage::

    python scripts/ctg_figure.py recordings/ctu-uhb_1001.xdf --out docs/figures/ctg_1001.png
    python scripts/ctg_figure.py ../shared/data/ctu-uhb-ctgdb/1001.hea --minutes 0 30
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from biosig.ctg import analyse_stream  # noqa: E402
from biosig.io import read_recording  # noqa: E402

_COLOURS = {
    "acceleration": "tab:green",
    "early_deceleration": "tab:cyan",
    "late_deceleration": "tab:red",
    "variable_deceleration": "tab:orange",
    "prolonged_deceleration": "tab:purple",
    "deceleration": "tab:brown",
    "maternal": "tab:pink",
}


def draw(path, out, minutes=None) -> None:
    recording = read_recording(path)
    stream = recording.signal(None)
    analysis = analyse_stream(stream)
    t_raw = stream.timestamps / 60.0
    fhr_raw = stream.data[:, stream.channel_labels.index("FHR")]
    uc_raw = stream.data[:, stream.channel_labels.index("UC")]
    clean = analysis.clean
    snap = analysis.snapshot
    fig, (ax, ax_uc) = plt.subplots(2, 1, figsize=(13, 6.5), sharex=True,
                                    gridspec_kw={"height_ratios": [2.2, 1]})
    ax.plot(t_raw, np.where(fhr_raw > 0, fhr_raw, np.nan), color="0.75", lw=0.6, label="raw FHR")
    ax.plot(clean.t / 60.0, clean.fhr, color="k", lw=0.7, label="cleaned FHR")
    ax.plot(snap.baseline_t / 60.0, snap.baseline_bpm, color="tab:blue", lw=2, label="baseline")
    seen = set()
    for event in snap.events:
        if event.kind == "contraction":
            ax_uc.axvspan(event.t_start / 60, event.t_end / 60, color="tab:olive", alpha=0.25, lw=0)
            continue
        label = None if event.kind in seen else event.kind.replace("_", " ")
        seen.add(event.kind)
        ax.axvspan(event.t_start / 60, event.t_end / 60, color=_COLOURS[event.kind], alpha=0.3,
                   lw=0, label=label)
    ax.axhspan(110, 160, color="tab:blue", alpha=0.05, lw=0)
    ax.set_ylabel("FHR (bpm)")
    ax.set_ylim(50, 210)
    ax.legend(loc="upper right", ncol=4, fontsize=8)
    name = recording.metadata.get("record_name", Path(path).stem)
    ph = recording.metadata.get("outcome_ph", "?")
    ax.set_title(f"CTU-UHB record {name} (pH {ph}): biosig CTG chain, baseline and events")
    ax_uc.plot(t_raw, np.where(uc_raw > 0, uc_raw, np.nan), color="0.3", lw=0.7)
    ax_uc.set_ylabel("UC (nd)\ncontractions shaded")
    ax_uc.set_xlabel("time (min)")
    if minutes:
        ax.set_xlim(*minutes)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".png", delete=False) as tmp:
        fig.savefig(tmp.name, dpi=110)
    os.replace(tmp.name, out)  # atomic: a reader never sees half a figure
    plt.close(fig)
    print(f"-> {out}: {len(snap.events)} events")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", help="CTG recording (XDF or WFDB .hea)")
    parser.add_argument("--out", default="docs/figures/ctg_record.png", help="output PNG")
    parser.add_argument("--minutes", nargs=2, type=float, help="time range to show, min")
    args = parser.parse_args(argv)
    draw(args.record, args.out, args.minutes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
