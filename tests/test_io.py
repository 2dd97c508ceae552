"""Readers: Myo text, WFDB (GRABMyo, CTU-UHB), CSV, the dispatcher and input expansion."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from biosig import BiosigError
from biosig.io import detect_format, iter_inputs, read_recording
from biosig.io.csv_reader import read_csv
from biosig.io.myo import MYO_LABEL_NAMES, read_myo
from biosig.io.wfdb_reader import PH_KEY, read_wfdb

MYO_SESSION = "myo-readings-dataset/12345-1"
GRABMYO_RECORD = "grabmyo-subset/session1_participant1_gesture11_trial1"
CTU_RECORD = "ctu-uhb-ctgdb/1001"


def _myo_rows(path):
    return np.loadtxt(path, dtype=np.int64, delimiter=",", ndmin=2)


def _label_changes(labels):
    change = np.ones(labels.shape[0], dtype=bool)
    change[1:] = labels[1:] != labels[:-1]
    return np.flatnonzero(change)


# --- Myo -----------------------------------------------------------------------------------


def test_myo_session_concatenates_files_with_markers_at_label_changes(shared_data):
    folder = shared_data / MYO_SESSION
    rows = np.concatenate([_myo_rows(folder / f"{i}.txt") for i in range(8)])
    recording = read_recording(folder)

    stream = recording.signal()
    assert stream.name == "MyoEMG" and stream.type == "EMG"
    assert stream.channel_labels == [f"emg{i}" for i in range(1, 9)]
    assert stream.channel_units == ["adu"] * 8
    assert stream.channel_format == "int8"
    assert stream.srate == 200.0
    np.testing.assert_array_equal(stream.data, rows[:, :8])
    np.testing.assert_array_equal(stream.timestamps, np.arange(rows.shape[0]) / 200.0)

    markers = recording.labels()
    changes = _label_changes(rows[:, 8])
    assert markers.values == [str(v) for v in rows[changes, 8]]
    np.testing.assert_array_equal(markers.timestamps, changes / 200.0)
    assert set(markers.values) == set(MYO_LABEL_NAMES)

    meta = recording.metadata
    assert (meta["participant"], meta["session"]) == ("12345", "1")
    assert json.loads(meta["label_names"])["7"] == "fist"
    starts = [int(s) for s in meta["file_start_samples"].split(",")]
    assert starts[1] == _myo_rows(folder / "0.txt").shape[0]


def test_myo_single_file_and_rate(shared_data):
    recording = read_recording(shared_data / MYO_SESSION / "3.txt", fs=100)
    stream = recording.signal()
    assert stream.srate == 100.0
    assert stream.n_samples == _myo_rows(shared_data / MYO_SESSION / "3.txt").shape[0]
    assert set(recording.labels().values) == {"0", "3"}


@pytest.mark.parametrize(
    "bad_line, expected",
    [
        ("1,2,3,4,5,6,7,8", "line 3: expected 9"),
        ("1,2,3,4,x,6,7,8,0", "line 3: not an integer"),
        ("1,2,3,4,300,6,7,8,0", "line 3: EMG value outside"),
        ("", "line 3: expected 9"),
    ],
)
def test_myo_bad_line_names_file_and_line(tmp_path, bad_line, expected):
    good = "1,2,3,4,5,6,7,8,0"
    path = tmp_path / "1.txt"
    path.write_text("\n".join([good, good, bad_line, good]) + "\n")
    with pytest.raises(BiosigError, match=expected) as info:
        read_myo(path)
    assert "1.txt" in str(info.value)


def test_myo_empty_file_and_empty_folder(tmp_path):
    (tmp_path / "0.txt").write_text("")
    with pytest.raises(BiosigError, match="empty"):
        read_myo(tmp_path / "0.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BiosigError, match="not a Myo session"):
        read_myo(empty)


# --- WFDB ----------------------------------------------------------------------------------


def test_grabmyo_values_units_and_gesture_marker(shared_data):
    import wfdb

    reference = wfdb.rdrecord(str(shared_data / GRABMYO_RECORD))
    keep = [i for i, name in enumerate(reference.sig_name) if not name.startswith("U")]
    recording = read_recording(shared_data / f"{GRABMYO_RECORD}.hea")

    stream = recording.signal()
    assert stream.name == "session1_participant1_gesture11_trial1"
    assert stream.type == "EMG"
    assert stream.channel_format == "double64"
    assert stream.n_channels == 28 and "U1" not in stream.channel_labels
    assert stream.channel_labels == [reference.sig_name[i] for i in keep]
    assert set(stream.channel_units) == {"mV"}
    assert stream.srate == 2048.0
    np.testing.assert_array_equal(stream.data, reference.p_signal[:, keep])
    np.testing.assert_array_equal(stream.timestamps, np.arange(10240) / 2048.0)

    labels = recording.labels()
    assert labels.name == "labels" and labels.values == ["11"]
    np.testing.assert_array_equal(labels.timestamps, [0.0])
    assert recording.metadata["gesture_name"] == "wrist extension"


def test_grabmyo_keep_all_channels_and_override_type(shared_data):
    recording = read_wfdb(shared_data / GRABMYO_RECORD, drop_channels=[], stream_type="misc")
    assert recording.signal().n_channels == 32
    assert recording.signal().type == "misc"
    with pytest.raises(BiosigError, match="no channel"):
        read_wfdb(shared_data / GRABMYO_RECORD, drop_channels=["nope"])


def test_ctu_values_and_header_metadata(shared_data):
    import wfdb

    reference = wfdb.rdrecord(str(shared_data / CTU_RECORD))
    recording = read_recording(shared_data / CTU_RECORD)  # record path without extension
    stream = recording.signal()
    assert stream.name == "1001" and stream.type == "CTG"
    assert stream.channel_labels == ["FHR", "UC"]
    assert stream.channel_units == ["bpm", "nd"]
    assert stream.srate == 4.0
    np.testing.assert_array_equal(stream.data, reference.p_signal)

    meta = recording.metadata
    assert meta["pH"] == "7.14" and meta[PH_KEY] == "7.14"
    assert meta["Apgar5"] == "8" and meta["Gest. weeks"] == "37" and meta["Deliv. type"] == "1"
    assert stream.metadata[PH_KEY] == "7.14"
    assert not recording.markers


def _copy_record(shared_data, record, dest):
    for suffix in (".hea", ".dat"):
        target = dest / f"{record.split('/')[-1]}{suffix}"
        shutil.copyfile(shared_data / f"{record}{suffix}", target)
    return dest / record.split("/")[-1]


def test_wfdb_truncated_or_garbage_files(shared_data, tmp_path):
    record = _copy_record(shared_data, CTU_RECORD, tmp_path)
    dat = record.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:1001])
    with pytest.raises(BiosigError, match="1001"):
        read_wfdb(record)

    garbage = tmp_path / "junk.hea"
    garbage.write_text("this is not a header\n")
    with pytest.raises(BiosigError, match="junk"):
        read_recording(garbage)

    with pytest.raises(BiosigError, match="not found"):
        read_wfdb(tmp_path / "missing.hea")


# --- CSV -----------------------------------------------------------------------------------


def _write_csv(path, text):
    path.write_text(text)
    return path


def test_csv_with_rate_labels_and_units(tmp_path):
    text = "a,b,label\n1,10,rest\n2,20,rest\n3,30,fist\n4,40,rest\n"
    path = _write_csv(tmp_path / "sig.csv", text)
    recording = read_csv(path, fs=50, label_column="label", units={"a": "mV"}, stream_type="EMG")
    stream = recording.signal()
    assert stream.name == "sig" and stream.channel_labels == ["a", "b"]
    assert stream.channel_units == ["mV", ""]
    np.testing.assert_array_equal(stream.data, [[1, 10], [2, 20], [3, 30], [4, 40]])
    np.testing.assert_array_equal(stream.timestamps, np.arange(4) / 50)
    markers = recording.labels()
    assert markers.values == ["rest", "fist", "rest"]
    np.testing.assert_array_equal(markers.timestamps, [0, 2 / 50, 3 / 50])


def test_csv_time_column_without_header_and_channel_pick(tmp_path):
    path = _write_csv(tmp_path / "t.csv", "0.0;5;7\n0.5;6;8\n1.0;7;9\n")
    recording = read_csv(path, time_column=0, channels=[2], delimiter=";", units="uV")
    stream = recording.signal()
    assert stream.srate == 2.0
    assert stream.channel_labels == ["ch3"] and stream.channel_units == ["uV"]
    np.testing.assert_array_equal(stream.timestamps, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(stream.data[:, 0], [7, 8, 9])


def test_csv_errors(tmp_path, shared_data):
    with pytest.raises(BiosigError, match="no sampling rate"):
        read_recording(shared_data / "uci-cardiotocography" / "CTG_train.csv")
    bad = _write_csv(tmp_path / "bad.csv", "a,b\n1,2\n3,oops\n")
    with pytest.raises(BiosigError, match=r"row 3, column 'b'"):
        read_csv(bad, fs=10)
    with pytest.raises(BiosigError, match="no column 'c'"):
        read_csv(bad, fs=10, channels=["c"])
    backwards = _write_csv(tmp_path / "back.csv", "t,x\n0,1\n1,2\n0.5,3\n")
    with pytest.raises(BiosigError, match="increase"):
        read_csv(backwards, time_column="t")
    ragged = _write_csv(tmp_path / "ragged.csv", "1,2\n3\n")
    with pytest.raises(BiosigError, match="row 2"):
        read_csv(ragged, fs=1)


# --- dispatch and input expansion ----------------------------------------------------------


def test_read_recording_refuses_unknown_missing_and_inapplicable(tmp_path, shared_data):
    odd = tmp_path / "signal.edf"
    odd.write_bytes(b"0")
    with pytest.raises(BiosigError, match=r"signal\.edf.*XDF.*WFDB.*Myo.*CSV"):
        read_recording(odd)
    with pytest.raises(BiosigError, match="not found"):
        read_recording(tmp_path / "nothing.xdf")
    with pytest.raises(BiosigError, match="do not apply to wfdb"):
        read_recording(shared_data / CTU_RECORD, fs=4)
    with pytest.raises(BiosigError, match="not a Myo session"):
        read_recording(tmp_path)
    with pytest.raises(BiosigError, match="format must be one of"):
        read_recording(odd, format="edf")


def test_detect_format(shared_data):
    assert detect_format(shared_data / f"{CTU_RECORD}.dat") == "wfdb"
    assert detect_format(shared_data / MYO_SESSION) == "myo"
    assert detect_format(shared_data / MYO_SESSION / "0.txt") == "myo"


def test_iter_inputs_orders_numbered_files_as_people_count(tmp_path):
    names = ["p10.csv", "p2.csv", "p1.csv", "P3.csv", "notes.txt", "p1b.csv"]
    for name in names:
        (tmp_path / name).write_text("t,x\n0,1\n")
    expected = ["p1.csv", "p1b.csv", "p2.csv", "P3.csv", "p10.csv"]
    assert [p.name for p in iter_inputs(tmp_path)] == expected
    assert [p.name for p in iter_inputs(str(tmp_path / "p*.csv"))] == [
        name for name in expected if name.startswith("p")]


def test_iter_inputs_expands_folders_and_globs(shared_data):
    grabmyo = iter_inputs(shared_data / "grabmyo-subset")
    assert len(grabmyo) == 20 and all(p.suffix == ".hea" for p in grabmyo)
    sessions = iter_inputs(shared_data / "myo-readings-dataset")
    assert [p.name for p in sessions][:3] == ["12345-1", "12345-2", "12345-3"]
    assert len(sessions) == 9
    assert iter_inputs(shared_data / MYO_SESSION) == [shared_data / MYO_SESSION]
    matched = iter_inputs([str(shared_data / "ctu-uhb-ctgdb" / "100[12].hea")])
    assert [p.name for p in matched] == ["1001.hea", "1002.hea"]
    # The .dat, the .hea and the record name are one record.
    record = shared_data / CTU_RECORD
    same = iter_inputs([record.with_suffix(".dat"), record.with_suffix(".hea"), record])
    assert same == [shared_data / f"{CTU_RECORD}.hea"]


def test_iter_inputs_errors(tmp_path):
    with pytest.raises(BiosigError, match="not found"):
        iter_inputs([tmp_path / "absent.hea"])
    with pytest.raises(BiosigError, match="no file matches"):
        iter_inputs([str(tmp_path / "*.xdf")])
    (tmp_path / "README.md").write_text("hi")
    with pytest.raises(BiosigError, match="no recording found"):
        iter_inputs(tmp_path)
