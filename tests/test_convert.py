"""``convert`` and the ``convert``/``info`` commands; the bundled recordings in ``recordings/``."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from biosig import BiosigError
from biosig.cli import main
from biosig.io import read_recording, read_xdf
from biosig.io.convert import ConversionError, convert, output_name
from conftest import RECORDINGS

MYO_SESSION = "myo-readings-dataset/12345-1"
GRABMYO_RECORD = "grabmyo-subset/session1_participant1_gesture11_trial1"
CTU_RECORD = "ctu-uhb-ctgdb/1001"

#: Bundled recording -> its source in the shared data (see recordings/README.md).
BUNDLED = {
    "myo_12345-1.xdf": MYO_SESSION,
    "grabmyo_session1_participant1_gesture11_trial1.xdf": f"{GRABMYO_RECORD}.hea",
    "ctu-uhb_1001.xdf": f"{CTU_RECORD}.hea",
}


def _load_xdf_streams(path):
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False)
    return {s["info"]["name"][0]: s for s in streams}


def _copy_record(shared_data, record, dest):
    for suffix in (".hea", ".dat"):
        name = record.split("/")[-1]
        shutil.copyfile(shared_data / f"{record}{suffix}", dest / f"{name}{suffix}")


def test_output_names(shared_data):
    assert output_name(shared_data / MYO_SESSION) == "12345-1.xdf"
    assert output_name(shared_data / MYO_SESSION / "3.txt") == "12345-1_3.xdf"
    assert output_name(shared_data / f"{CTU_RECORD}.hea") == "1001.xdf"
    assert output_name(shared_data / GRABMYO_RECORD) == f"{GRABMYO_RECORD.split('/')[-1]}.xdf"


@pytest.mark.parametrize("source", [MYO_SESSION, f"{GRABMYO_RECORD}.hea", f"{CTU_RECORD}.hea"])
def test_convert_keeps_samples_and_labels(shared_data, tmp_path, source):
    original = read_recording(shared_data / source)
    (written,) = convert([shared_data / source], tmp_path, progress=False)
    assert written == tmp_path / output_name(shared_data / source)

    in_file = _load_xdf_streams(written)
    for stream in original.streams.values():
        loaded = in_file[stream.name]
        assert loaded["info"]["channel_format"][0] == stream.channel_format
        assert float(loaded["info"]["nominal_srate"][0]) == stream.srate
        np.testing.assert_array_equal(np.asarray(loaded["time_series"], np.float64), stream.data)
        np.testing.assert_allclose(loaded["time_stamps"], stream.timestamps, atol=1e-9)
    for markers in original.markers.values():
        loaded = in_file[markers.name]
        assert [row[0] for row in loaded["time_series"]] == markers.values
        np.testing.assert_allclose(loaded["time_stamps"], markers.timestamps, atol=1e-9)


def test_convert_keeps_ctg_outcome_metadata(shared_data, tmp_path):
    from biosig.io.wfdb_reader import PH_KEY

    (written,) = convert([shared_data / f"{CTU_RECORD}.hea"], tmp_path, progress=False)
    back = read_xdf(written)
    assert back.signal().metadata[PH_KEY] == "7.14"


def test_convert_skips_existing_unless_overwrite(shared_data, tmp_path, caplog):
    source = [shared_data / f"{CTU_RECORD}.hea"]
    (first,) = convert(source, tmp_path, progress=False)
    first.write_bytes(b"stale")
    assert convert(source, tmp_path, progress=False) == []
    assert first.read_bytes() == b"stale"
    assert "exists, skipped" in caplog.text
    assert convert(source, tmp_path, overwrite=True, progress=False) == [first]
    assert first.read_bytes() != b"stale"


def test_convert_batch_survives_a_broken_file(shared_data, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    _copy_record(shared_data, CTU_RECORD, inputs)
    _copy_record(shared_data, "ctu-uhb-ctgdb/1002", inputs)
    (inputs / "0999.hea").write_text("not a header\n")
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="1 of 3") as info:
        convert([inputs], out, progress=False)
    assert [p.name for p in info.value.written] == ["1001.xdf", "1002.xdf"]
    assert info.value.failed[0][0].name == "0999.hea"
    assert sorted(p.name for p in out.iterdir()) == ["1001.xdf", "1002.xdf"]


def test_convert_refuses_colliding_outputs(shared_data, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    _copy_record(shared_data, CTU_RECORD, other)
    inputs = [shared_data / f"{CTU_RECORD}.hea", other / "1001.hea"]
    with pytest.raises(ConversionError, match="1 of 2") as info:
        convert(inputs, tmp_path / "out", progress=False)
    assert "also the output of" in info.value.failed[0][1]


def test_convert_missing_input_converts_nothing(tmp_path):
    with pytest.raises(BiosigError, match="not found"):
        convert([tmp_path / "absent.hea"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


# --- command line --------------------------------------------------------------------------


def test_cli_convert_missing_file_is_one_line_exit_2(tmp_path, capsys):
    code = main(["convert", str(tmp_path / "absent.hea"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "absent.hea" in err and "Traceback" not in err


def test_cli_convert_folder_with_a_broken_file(shared_data, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    _copy_record(shared_data, CTU_RECORD, inputs)
    (inputs / "broken.hea").write_text("garbage\n")
    out = tmp_path / "out"
    code = main(["convert", str(inputs), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert "broken.hea" in err and "Traceback" not in err
    assert (out / "1001.xdf").is_file() and not (out / "broken.xdf").exists()


def test_cli_convert_and_info(shared_data, tmp_path, capsys):
    source = str(shared_data / MYO_SESSION)
    code = main(["convert", source, "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    assert "wrote 1" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "12345-1.xdf")]) == 0
    text = capsys.readouterr().out
    assert "MyoEMG" in text and "8 ch @ 200 Hz" in text and "int8" in text
    assert "labels: type Markers" in text and "7 (fist): 6 events" in text


def test_cli_info_on_wfdb_and_bad_option(shared_data, capsys):
    assert main(["info", str(shared_data / CTU_RECORD)]) == 0
    text = capsys.readouterr().out
    assert "1001: type CTG, 2 ch @ 4 Hz" in text and "FHR [bpm], UC [nd]" in text
    assert "pH: 7.14" in text
    assert main(["info", str(shared_data / CTU_RECORD), "--fs", "4"]) == 2
    assert "do not apply" in capsys.readouterr().err


# --- bundled recordings --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_recording_reads_back(name):
    recording = read_xdf(RECORDINGS / name)
    assert recording.streams
    signal = recording.signal()
    assert signal.n_samples > 0 and signal.srate > 0
    assert np.all(np.isfinite(signal.data))


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_recording_matches_its_source(shared_data, name):
    bundled = read_xdf(RECORDINGS / name, dejitter_timestamps=False)
    source = read_recording(shared_data / BUNDLED[name])
    for stream in source.streams.values():
        np.testing.assert_array_equal(bundled.streams[stream.name].data, stream.data)
    for markers in source.markers.values():
        assert bundled.markers[markers.name].values == markers.values


def test_convert_folder_of_xdf_with_prefix(tmp_path):
    written = convert([RECORDINGS], tmp_path, prefix="copy_", progress=False)
    assert sorted(p.name for p in written) == sorted(f"copy_{name}" for name in BUNDLED)
    for name in BUNDLED:
        original = read_xdf(RECORDINGS / name)
        copy = read_xdf(tmp_path / f"copy_{name}")
        for stream in original.streams.values():
            np.testing.assert_array_equal(copy.streams[stream.name].data, stream.data)
            assert copy.streams[stream.name].channel_format == stream.channel_format
        assert copy.metadata == original.metadata


def test_cli_convert_csv_with_rate_and_labels(tmp_path, capsys):
    source = tmp_path / "grip.csv"
    source.write_text("flexor,extensor,label\n0.1,0.2,rest\n0.3,0.4,grip\n0.5,0.6,grip\n")
    code = main([
        "convert", str(source), "--out", str(tmp_path / "out"), "--fs", "1000",
        "--label-column", "label", "--no-progress",
    ])
    assert code == 0, capsys.readouterr().err
    back = read_xdf(tmp_path / "out" / "grip.xdf")
    assert back.signal().srate == 1000.0 and back.signal().channel_labels == ["flexor", "extensor"]
    np.testing.assert_array_equal(back.signal().data[:, 1], [0.2, 0.4, 0.6])
    assert back.labels().values == ["rest", "grip"]
