"""Truncated and corrupted XDF, WFDB, CSV and ONNX files through the command line.

A seeded fuzzer truncates files, flips bits and overwrites byte runs; ``biosig info``,
``process``, ``evaluate`` and ``convert`` must then either work (the damage hit sample values) or
end with one ``biosig CMD: error: ...`` line and exit code 2: never a traceback, never a hang.

The cases run in one child process per format (``biosig.cli.main`` called in a loop, each call
under a SIGALRM watchdog), so a hang is caught and named, and the child's own timeout catches a
hang in C code. A few cases also run as real ``python -m biosig`` processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import wfdb

from biosig.io import read_recording
from biosig.io.recording import Markers, Recording
from biosig.io.xdf import write_xdf

REPO = Path(__file__).resolve().parents[1]
MYO = REPO / "recordings" / "myo_12345-1.xdf"
GRABMYO = REPO / "recordings" / "grabmyo_session1_participant1_gesture11_trial1.xdf"
MODEL = REPO / "models" / "myo-12345-jsu.onnx"
CASE_TIMEOUT_S = 20

DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, logging, signal, sys
    from biosig.cli import main

    class Hang(Exception):
        pass

    def on_alarm(*_):
        raise Hang()

    signal.signal(signal.SIGALRM, on_alarm)
    results = []
    for argv in json.loads(sys.stdin.read()):
        err, out = io.StringIO(), io.StringIO()
        logging.root.handlers.clear()  # main() binds its log handler to this case's stderr
        signal.alarm(%d)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                rc, kind = main(argv), "returned"
        except Hang:
            rc, kind = None, "hang"
        except SystemExit as exc:
            rc, kind = exc.code, "exit"
        except BaseException as exc:
            rc, kind = None, "crash: %%s: %%s" %% (type(exc).__name__, str(exc)[:300])
        finally:
            signal.alarm(0)
        results.append({"argv": argv, "rc": rc, "kind": kind, "stderr": err.getvalue()})
    print(json.dumps(results))
    """
    % CASE_TIMEOUT_S
)


def corrupt(raw: bytes, rng: np.random.Generator, mode: int) -> bytes:
    """Truncate (0), flip 1-8 bits (1) or overwrite 16 bytes with noise (2)."""
    data = bytearray(raw)
    if mode == 0:
        return bytes(data[: int(rng.integers(0, len(data)))])
    if mode == 1:
        for pos in rng.integers(0, len(data), size=int(rng.integers(1, 9))):
            data[pos] ^= 1 << int(rng.integers(0, 8))
        return bytes(data)
    pos = int(rng.integers(0, max(len(data) - 16, 1)))
    data[pos : pos + 16] = rng.bytes(16)
    return bytes(data)


def run_cases(cases: list[list[str]]) -> list[dict]:
    """Run ``biosig`` argument lists in one child process; return what each did."""
    done = subprocess.run(
        [sys.executable, "-c", DRIVER], input=json.dumps(cases), capture_output=True, text=True,
        timeout=60 + 2 * len(cases), cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_outcomes(results: list[dict], min_refused: int) -> dict:
    """Every case worked or was refused in one error line with exit 2; count them."""
    counts = {"ok": 0, "refused": 0}
    for r in results:
        where = " ".join(r["argv"])
        assert r["kind"] in ("returned", "exit"), f"{where}: {r['kind']}"
        assert "Traceback" not in r["stderr"], f"{where}: {r['stderr']}"
        if r["rc"] == 0:
            counts["ok"] += 1
            continue
        assert r["rc"] == 2, f"{where}: exit {r['rc']}: {r['stderr']}"
        errors = [line for line in r["stderr"].splitlines() if ": error: " in line]
        assert len(errors) == 1, f"{where}: {r['stderr']!r}"
        assert r["stderr"].rstrip("\n").splitlines()[-1] == errors[0]
        counts["refused"] += 1
    assert counts["refused"] >= min_refused, counts
    return counts


@pytest.fixture(scope="module")
def small_myo(tmp_path_factory) -> Path:
    """20 s of the bundled Myo session (rest and wrist flexion), with its labels, as XDF."""
    recording = read_recording(MYO)
    stream, labels = recording.signal(), recording.labels()
    start = int(60 * stream.srate)
    keep = slice(start, start + int(20 * stream.srate))
    clip = stream.pick_channels(stream.channel_labels)
    clip.data, clip.timestamps = stream.data[keep], stream.timestamps[keep]
    t0, t1 = clip.timestamps[0], clip.timestamps[-1]
    inside = (labels.timestamps > t0) & (labels.timestamps <= t1)
    times = np.concatenate(([t0], labels.timestamps[inside]))
    values = [str(labels.label_at(np.array([t0]))[0])] + [
        v for v, k in zip(labels.values, inside) if k
    ]
    small = Recording(metadata={"dataset": "fuzz"}, source=MYO)
    small.add_stream(clip)
    small.add_markers(Markers(name="labels", timestamps=times, values=values))
    return write_xdf(small, tmp_path_factory.mktemp("myo") / "small.xdf")


def test_corrupted_xdf_through_info_process_and_evaluate(small_myo, tmp_path):
    raw = small_myo.read_bytes()
    rng = np.random.default_rng(20240501)
    cases = []
    for i in range(18):
        path = tmp_path / f"broken{i}.xdf"
        path.write_bytes(corrupt(raw, rng, i % 3))
        cases.append(["info", str(path)])
        if i % 6 == 0:  # the model-loading commands cost ~0.3 s each: fewer of them
            cases += [
                ["process", str(path), "--out", str(tmp_path / f"out{i}.csv"), "--model", str(MODEL)],
                ["evaluate", str(MODEL), str(path), "--json"],
            ]
    for n in (3, 40):  # cut inside the magic number and inside the file header: nothing to read
        path = tmp_path / f"cut{n}.xdf"
        path.write_bytes(raw[:n])
        cases.append(["info", str(path)])
    # The XDF reader reads up to the last complete chunk and skips a damaged one (see
    # tests/test_xdf.py), so most damaged files are still read: few are refused.
    counts = check_outcomes(run_cases(cases), min_refused=2)
    assert counts["ok"] > 0


def test_corrupted_wfdb_header_and_signal_files(tmp_path):
    stream = read_recording(GRABMYO).signal()
    names = stream.channel_labels[:6]
    wfdb.wrsamp("rec", fs=stream.srate, units=["mV"] * 6, sig_name=names,
                p_signal=stream.data[:2048, :6], fmt=["16"] * 6, write_dir=str(tmp_path))
    header, signal = (tmp_path / "rec.hea").read_bytes(), (tmp_path / "rec.dat").read_bytes()
    rng = np.random.default_rng(7)
    cases = []
    for i in range(12):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        damaged_header = i % 2 == 0
        (folder / "rec.hea").write_bytes(corrupt(header, rng, i % 3) if damaged_header else header)
        (folder / "rec.dat").write_bytes(signal if damaged_header else corrupt(signal, rng, i % 3))
        cases += [
            ["info", str(folder / "rec.hea")],
            ["process", str(folder / "rec.hea"), "--out", str(folder / "out.csv")],
        ]
    check_outcomes(run_cases(cases), min_refused=6)


def _write_csv(path: Path, data: np.ndarray) -> Path:
    header = ",".join(f"emg{i + 1}" for i in range(data.shape[1]))
    np.savetxt(path, data, delimiter=",", header=header, comments="", fmt="%d")
    return path


def test_corrupted_csv_and_a_batch_that_continues_past_it(tmp_path):
    data = read_recording(MYO).signal().data[:2000]
    raw = _write_csv(tmp_path / "good.csv", data).read_bytes()
    rng = np.random.default_rng(11)
    cases = []
    for i in range(30):
        path = tmp_path / f"broken{i}.csv"
        path.write_bytes(corrupt(raw, rng, i % 3))
        cases.append(["info", str(path), "--fs", "200"])
    # A batch: the broken file in the middle must not stop the others.
    bad = tmp_path / "batch" / "b_bad.csv"
    bad.parent.mkdir()
    _write_csv(tmp_path / "batch" / "a_good.csv", data[:500])
    bad.write_bytes(raw[:200] + b"12,not-a-number,3\n" + raw[200:])
    _write_csv(tmp_path / "batch" / "c_good.csv", data[500:1000])
    out = tmp_path / "converted"
    cases.append(["convert", str(tmp_path / "batch"), "--out", str(out), "--fs", "200",
                  "--no-progress"])
    results = run_cases(cases)
    check_outcomes(results, min_refused=5)
    batch = results[-1]
    assert batch["rc"] == 2 and "b_bad.csv" in batch["stderr"]
    assert sorted(p.name for p in out.iterdir()) == ["a_good.xdf", "c_good.xdf"]
    np.testing.assert_array_equal(read_recording(out / "c_good.xdf").signal().data, data[500:1000])


def test_corrupted_onnx_models_in_evaluate_and_process(small_myo, tmp_path):
    raw = MODEL.read_bytes()
    rng = np.random.default_rng(99)
    cases = []
    for i in range(9):
        path = tmp_path / f"broken{i}.onnx"
        path.write_bytes(corrupt(raw, rng, i % 3))
        cases.append(["evaluate", str(path), str(small_myo), "--json"])
        if i % 3 == 0:
            cases.append(["process", str(small_myo), "--model", str(path), "--out",
                          str(tmp_path / f"o{i}.csv")])
    check_outcomes(run_cases(cases), min_refused=3)


@pytest.mark.parametrize("name, content", [
    ("cut.xdf", lambda: MYO.read_bytes()[:5000]),
    ("cut.onnx", lambda: MODEL.read_bytes()[:5000]),
    ("noise.csv", lambda: np.random.default_rng(3).bytes(3000)),
])
def test_real_process_gives_one_line_and_exit_2(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content())
    if name.endswith(".onnx"):
        argv = ["evaluate", str(path), str(GRABMYO)]
    else:
        argv = ["info", str(path)] + (["--fs", "200"] if name.endswith(".csv") else [])
    done = subprocess.run([sys.executable, "-m", "biosig", *argv], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    if name == "cut.xdf":
        # A truncated XDF reads up to its last complete chunk (the recorder's crash guarantee).
        assert done.returncode == 0 and "MyoEMG" in done.stdout, done.stderr
        return
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"biosig {argv[0]}: error: ")
