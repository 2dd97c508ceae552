"""Offline throughput: biosig's analysis path against LibEMG's Hudgins features + LDA.

Both sides get the same Myo recording(s) and the same windows (the model's length and hop,
0.2 s every 0.05 s at 200 Hz), already in memory (file reading is not timed on either side):

- **biosig**: the path ``biosig analyze`` runs per recording (:mod:`biosig.analysis.batch`):
  :class:`~biosig.stream.pipeline.StreamProcessor` with the model's settings (high-pass and
  notch filters with carried state, rectification, moving-RMS envelope, 48 features, the
  per-window clipped/flat-channel check), fed in chunks of
  :func:`~biosig.analysis.batch.chunk_samples`, then onnxruntime inference in batches of
  :data:`~biosig.analysis.batch.ONNX_BATCH` windows (posteriors, entropy, OOD flag, decision).
  Timed with each bundled network (JSU, SDGM) and with an LDA exported to ONNX
  (:func:`biosig.inference.build_linear_model`), the same classifier family as the peer; for
  each model also the inference alone on precomputed features, and the features alone with
  and without the signal-quality check: together they show what bounds the path.
- **biosig on the peer's features**: the same path with the pipeline's features set to the
  peer's Hudgins set (MAV, WL, ZC, SSC: 32 features; no envelope, which none of them needs)
  and a JSU network trained in the run on those windows with ``biosig.training.train_model``
  (not timed; its held-out accuracy is printed beside the bundled JSU's). Filters, the quality
  check and ONNX inference with posteriors stay in: the like-for-like comparison.
- **LibEMG** (``libemg.utils.get_windows``, ``FeatureExtractor.extract_features`` with the
  Hudgins set MAV, ZC, SSC, WL, ``EMGClassifier("LDA").run``): the peer a user would pick
  instead. Timed without filtering (LibEMG's usual offline recipe; the ratios use this) and
  with its ``Filter`` (the same 20 Hz high-pass and 50 Hz notch, zero-phase ``filtfilt``).

Classifiers are fitted on the windows first (not timed). The configurations run in turn,
``--repeats`` rounds, and each figure is its best round, so that load from other jobs on a
shared machine hits all sides alike; the load average is printed before and after. Each ratio
is printed twice: of the two best times, and the median over rounds of the ratio within a
round (a slow spell that spans a round slows both sides of it alike). One thread
each side (``OMP_NUM_THREADS=1``; ``--threads`` for onnxruntime). libemg pins ``numpy<2``, so
run this from a separate environment (see docs/benchmarks.md)::

    python3 -m venv /work/bench-venv
    /work/bench-venv/bin/pip install torch==2.13.0 -e /work/main libemg
    /work/bench-venv/bin/python benchmarks/offline_throughput.py

The OpenBLAS inside numpy 1.x wheels (0.3.23) does not know recent Xeons (e.g. Sapphire
Rapids, as on the development VM) and falls back to its generic "Prescott" kernels, 3-10x
slower for small matrix products, on both sides. When it reports that kernel on a CPU with
AVX2 or AVX-512, the script re-runs itself with ``OPENBLAS_CORETYPE`` set to the kernel numpy
2's OpenBLAS picks there (Haswell or SkylakeX) and says so; set ``OPENBLAS_CORETYPE`` yourself
to choose (e.g. ``Prescott`` to measure the fallback).

Without libemg installed, the peer side is a plain numpy + scikit-learn implementation of the
same features and LDA, and the output says so.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per side: numpy/BLAS too

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# OpenBLAS kernels of numpy 1.x's fallback for CPUs it does not know.
_GENERIC_BLAS = ("prescott", "core2", "nehalem", "katmai", "generic")


def blas_summary() -> str:
    """OpenBLAS kernel and threads of numpy, e.g. ``"OpenBLAS SkylakeX, 1 thread(s)"``."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS unknown (no threadpoolctl)"
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            name = info.get("internal_api", "blas")
            return f"{name} {info.get('architecture', '?')}, {info.get('num_threads')} thread(s)"
    return "BLAS unknown"


def fix_generic_blas() -> None:
    """Re-run with ``OPENBLAS_CORETYPE`` set when numpy's OpenBLAS fell back to generic kernels.

    Only on Linux, only when the variable is unset, and only for a CPU whose flags show AVX2
    (Haswell kernels) or AVX-512 (SkylakeX kernels).
    """
    if "OPENBLAS_CORETYPE" in os.environ or not Path("/proc/cpuinfo").exists():
        return
    summary = blas_summary().lower()
    if not summary.startswith("openblas") or not any(k in summary for k in _GENERIC_BLAS):
        return
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    core = "SkylakeX" if "avx512f" in flags else "Haswell" if "avx2" in flags else None
    if core is None:
        return
    os.environ["OPENBLAS_CORETYPE"] = core
    os.environ["BIOSIG_BENCH_BLAS_NOTE"] = summary.split(",")[0]
    os.execv(sys.executable, [sys.executable, *sys.argv])


def load_streams(paths, model):
    """The model's signal stream and its per-sample label (str) of each recording."""
    from biosig.io import iter_inputs, read_recording

    out = []
    for path in iter_inputs(paths):
        recording = read_recording(path)
        stream = model.check_recording(recording)
        if list(stream.channel_labels) != list(model.channels):  # as biosig analyze: in place
            stream = stream.pick_channels(model.channels)
        markers = recording.labels()
        labels = markers.label_at(stream.timestamps) if markers is not None else None
        out.append((stream, labels))
    return out


def best_in_turn(repeats: int, runs: dict) -> tuple[dict, dict]:
    """Run every ``name -> func`` once per round, ``repeats`` rounds.

    Returns ``{name: (best seconds, func's result)}`` and ``{name: [seconds of each round]}``.
    """
    best = {name: (float("inf"), None) for name in runs}
    rounds = {name: [] for name in runs}
    for _ in range(repeats):
        for name, func in runs.items():
            started = time.perf_counter()
            result = func()
            elapsed = time.perf_counter() - started
            rounds[name].append(elapsed)
            if elapsed < best[name][0]:
                best[name] = (elapsed, result)
    return best, rounds


def paired_ratio(ours: list, theirs: list) -> float:
    """Median over rounds of ``theirs / ours`` (rates, same windows): a slow spell of the
    machine slows both sides of a round, so the ratio of one round is steadier than the ratio
    of the two best times, which may come from different rounds."""
    return float(np.median(np.asarray(theirs) / np.asarray(ours)))


# -- biosig -----------------------------------------------------------------------------------


def biosig_run(streams, model, batch_windows=4096, config=None):
    """The analyze path on every stream (no inference without a model); returns the windows."""
    from biosig.analysis.batch import chunk_samples, run_windows
    from biosig.stream.pipeline import StreamProcessor

    config = config or model.pipeline_config()
    total = 0
    for stream, _ in streams:
        processor = StreamProcessor(config, stream.srate, stream.channel_labels, model)
        results = run_windows(processor, stream, chunk_samples(config, stream.srate, batch_windows))
        total += len(results)
    return total


def biosig_features(streams, config):
    """Features of every window of every stream (for the inference-only figures)."""
    from biosig.stream.pipeline import process_recording

    return [process_recording(stream, config).features for stream, _ in streams]


def biosig_infer(features, model):
    """The model's :meth:`~biosig.inference.OnnxModel.infer` on precomputed features."""
    total = 0
    for X in features:
        model.reset()
        total += len(model.infer(X))
    return total


def biosig_lda_model(streams, model, path: Path, threads: int):
    """An LDA on biosig's own features, exported to ONNX with the JSU model's card."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from biosig.analysis.batch import ONNX_BATCH
    from biosig.inference import OnnxModel, build_linear_model
    from biosig.stream.pipeline import process_recording

    X, y = [], []
    config = model.pipeline_config()
    for stream, labels in streams:
        results = process_recording(stream, config)
        X.append(results.features)
        idx = np.searchsorted(stream.timestamps, results.t_end)
        y.append(np.asarray(labels)[idx])
    X, y = np.vstack(X), np.concatenate(y)
    classes = [str(c) for c in model.classes_]
    keep = np.isin(y, classes)
    lda = LinearDiscriminantAnalysis().fit(X[keep], y[keep])
    order = [list(lda.classes_).index(c) for c in classes]
    card = dict(model.card, arch="lda", temperature=1.0)
    import onnx

    onnx.save(build_linear_model(lda.coef_.T[:, order], lda.intercept_[order], card), path)
    return OnnxModel(path, threads=threads, batch_size=ONNX_BATCH)


def hudgins_config(config):
    """``config`` with the peer's Hudgins features (MAV, WL, ZC, SSC) and no envelope."""
    import dataclasses

    td = copy.deepcopy(config)
    td.features = dataclasses.replace(td.features, names=("mav", "wl", "zc", "ssc"))
    td.preprocess = dataclasses.replace(td.preprocess, envelope="none")
    return td


def biosig_td_jsu_model(paths, config, path: Path, threads: int):
    """A JSU network (biosig train's defaults) on the Hudgins features of the recordings."""
    from biosig.analysis.batch import ONNX_BATCH
    from biosig.datasets import build_dataset
    from biosig.inference import OnnxModel
    from biosig.training import train_model

    dataset, used, info = build_dataset(paths, config, progress=False)
    train_model(dataset, arch="jsu", out=path, pipeline_config=used, stream_info=info,
                verbose=False)
    return OnnxModel(path, threads=threads, batch_size=ONNX_BATCH)


def held_out_accuracy(model) -> float:
    return float(model.card["metrics"]["calibration_set"]["accuracy"])


# -- LibEMG -----------------------------------------------------------------------------------


def window_labels(labels, n_windows, size, hop):
    ends = np.arange(n_windows) * hop + size - 1
    return np.asarray(labels)[ends]


class LibEMGPeer:
    """LibEMG's offline recipe: windows, Hudgins features, LDA (optionally its filters first)."""

    name = "LibEMG 2.0.3"

    def __init__(self, srate, size, hop, filtered):
        from libemg.emg_predictor import EMGClassifier
        from libemg.feature_extractor import FeatureExtractor
        from libemg.filtering import Filter
        from libemg.utils import get_windows

        self.size, self.hop = size, hop
        self.get_windows = get_windows
        self.extractor = FeatureExtractor()
        self.classifier = EMGClassifier("LDA")
        self.filter = None
        if filtered:
            self.filter = Filter(srate)
            self.filter.install_filters({"name": "highpass", "cutoff": 20, "order": 4})
            self.filter.install_filters({"name": "notch", "cutoff": 50, "bandwidth": 3})

    def features(self, data):
        if self.filter is not None:
            data = self.filter.filter(data)
        windows = self.get_windows(data, self.size, self.hop)
        return self.extractor.extract_features(["MAV", "ZC", "SSC", "WL"], windows)

    def fit(self, data_list, labels_list):
        feats, ys = [], []
        for data, labels in zip(data_list, labels_list):
            f = self.features(data)
            n = len(next(iter(f.values())))
            feats.append(f)
            ys.append(window_labels(labels, n, self.size, self.hop))
        merged = {k: np.vstack([f[k] for f in feats]) for k in feats[0]}
        self.classifier.fit(feature_dictionary={"training_features": merged,
                                                "training_labels": np.concatenate(ys)})

    def run(self, data_list):
        total = 0
        for data in data_list:
            predictions, _ = self.classifier.run(self.features(data))
            total += len(predictions)
        return total


class NumpyHudginsPeer:
    """The same recipe in numpy + scikit-learn, for when libemg is not installed."""

    name = "numpy + scikit-learn (libemg not installed)"

    def __init__(self, srate, size, hop, filtered):
        from scipy.signal import butter, filtfilt, iirnotch

        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        self.size, self.hop = size, hop
        self.lda = LinearDiscriminantAnalysis()
        self.filters = []
        if filtered:
            self.filters = [butter(4, 20, "highpass", fs=srate), iirnotch(50, 50 / 3, fs=srate)]
        self._filtfilt = filtfilt

    def features(self, data):
        for b, a in self.filters:
            data = self._filtfilt(b, a, data, axis=0)
        n = (data.shape[0] - self.size) // self.hop + 1
        index = np.arange(n)[:, None] * self.hop + np.arange(self.size)[None, :]
        windows = data[index].transpose(0, 2, 1)  # (n, channels, samples), as LibEMG
        diff = np.diff(windows, axis=2)
        mav = np.abs(windows).mean(axis=2)
        zc = (np.abs(np.diff(np.sign(windows), axis=2)) == 2).sum(axis=2)
        ssc = ((diff[:, :, :-1] * -diff[:, :, 1:]) >= 0).sum(axis=2)
        wl = np.abs(diff).sum(axis=2)
        return np.hstack([mav, zc, ssc, wl])

    def fit(self, data_list, labels_list):
        X = [self.features(d) for d in data_list]
        y = [window_labels(lab, len(x), self.size, self.hop) for x, lab in zip(X, labels_list)]
        self.lda.fit(np.vstack(X), np.concatenate(y))

    def run(self, data_list):
        total = 0
        for data in data_list:
            total += len(self.lda.predict_proba(self.features(data)))
        return total


def make_peer(srate, size, hop, filtered):
    try:
        import libemg  # noqa: F401
    except ImportError:
        return NumpyHudginsPeer(srate, size, hop, filtered)
    return LibEMGPeer(srate, size, hop, filtered)


# -- main -------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=[str(REPO / "recordings" / "myo_12345-1.xdf")],
                        help="Myo recordings (default: the bundled session)")
    parser.add_argument("--models", nargs="+",
                        default=[str(REPO / "models" / "myo-12345-jsu.onnx"),
                                 str(REPO / "models" / "myo-12345-sdgm.onnx")],
                        help="biosig models to time (the first one's pipeline and classes are "
                             "used for all, and for the LDA exported to ONNX)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; best round counts")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = parser.parse_args(argv)
    fix_generic_blas()

    import logging
    import tempfile

    logging.disable(logging.WARNING)  # the XDF reader's notes are not benchmark output
    from biosig.analysis.batch import ONNX_BATCH
    from biosig.inference import OnnxModel

    models = [OnnxModel(path, threads=args.threads, batch_size=ONNX_BATCH) for path in args.models]
    model = models[0]
    streams = load_streams(args.data, model)
    config = model.pipeline_config()
    srate = streams[0][0].srate
    size = int(round(config.window.length_s * srate))
    hop = int(round(config.window.hop_s * srate))
    data_list = [s.data for s, _ in streams]
    labels_list = [lab for _, lab in streams]
    seconds = sum(s.duration for s, _ in streams)
    print(f"{len(streams)} recording(s), {seconds:.0f} s of {streams[0][0].n_channels}-ch EMG at "
          f"{srate:g} Hz; windows {size} samples every {hop}; best of {args.repeats} rounds; "
          f"onnxruntime {model.providers[0]}, {args.threads} thread(s), batches of {ONNX_BATCH}; "
          f"numpy {np.__version__}, {blas_summary()}")
    note = os.environ.get("BIOSIG_BENCH_BLAS_NOTE")
    if note:
        print(f"note: numpy's {note} fell back to generic kernels on this CPU; re-ran with "
              f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} (both sides)")
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        models.append(biosig_lda_model(streams, model, Path(tmp) / "lda.onnx", args.threads))
        features = biosig_features(streams, config)
        runs, names = {}, {}
        runs["dsp"] = lambda: biosig_run(streams, None, config=config)
        names["dsp"] = "biosig: filters + envelope + 48 features + quality (no inference)"
        unchecked = copy.deepcopy(config)
        unchecked.quality.clipping = unchecked.quality.flat = False
        runs["dsp unchecked"] = lambda: biosig_run(streams, None, config=unchecked)
        names["dsp unchecked"] = "biosig: the same without the clipped/flat-channel check"
        for m in models:
            arch = m.card["arch"].upper()
            runs[arch] = lambda m=m: biosig_run(streams, m, config=config)
            names[arch] = f"biosig: filters + envelope + 48 features + quality + ONNX {arch}"
            runs[arch + " alone"] = lambda m=m: biosig_infer(features, m)
            names[arch + " alone"] = f"biosig: ONNX {arch} alone (features precomputed)"
        td_config = hudgins_config(config)
        td_model = biosig_td_jsu_model(args.data, td_config, Path(tmp) / "td-jsu.onnx",
                                       args.threads)
        td_features = biosig_features(streams, td_config)
        runs["td dsp"] = lambda: biosig_run(streams, None, config=td_config)
        names["td dsp"] = "biosig: filters + Hudgins TD (MAV, ZC, SSC, WL) + quality"
        runs["JSU on TD"] = lambda: biosig_run(streams, td_model, config=td_config)
        names["JSU on TD"] = "biosig: filters + Hudgins TD + quality + ONNX JSU (trained on TD)"
        runs["JSU on TD alone"] = lambda: biosig_infer(td_features, td_model)
        names["JSU on TD alone"] = "biosig: ONNX JSU on TD alone (features precomputed)"
        td_accuracy = held_out_accuracy(td_model)
        for filtered in (False, True):
            peer = make_peer(srate, size, hop, filtered)
            peer.fit(data_list, labels_list)
            key = "peer filtered" if filtered else "peer"
            runs[key] = lambda peer=peer: peer.run(data_list)
            what = "filtfilt + " if filtered else ""
            names[key] = f"{peer.name}: {what}Hudgins TD (MAV, ZC, SSC, WL) + LDA"
        best, rounds = best_in_turn(args.repeats, runs)
    load_after = os.getloadavg()

    width = max(len(name) for name in names.values())
    print(f"{'pipeline':<{width}}  {'windows':>8}  {'time (s)':>9}  {'windows/s':>10}")
    for key, name in names.items():
        t, n = best[key]
        print(f"{name:<{width}}  {n:>8}  {t:>9.4f}  {n / t:>10.0f}")
    peer_t, peer_n = best["peer"]
    for key in [m.card["arch"].upper() for m in models] + ["JSU on TD"]:
        t, n = best[key]
        paired = paired_ratio(rounds[key], rounds["peer"]) * n / peer_n
        print(f"ratio biosig + ONNX {key} / LibEMG (no filter): {n / t / (peer_n / peer_t):.2f}x "
              f"(goal >= 5x); median of the rounds' ratios {paired:.2f}x")
    print(f"held-out accuracy: JSU on the 48 features (bundled) {held_out_accuracy(model):.3f}, "
          f"JSU on Hudgins TD {td_accuracy:.3f}")
    print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on "
          f"{os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
