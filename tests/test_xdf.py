"""XDF reading and writing: round trips checked with pyxdf directly, crash safety, bad files."""

from __future__ import annotations

import gzip
import logging
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pyxdf
import pytest

from biosig._checks import BiosigError
from biosig.io.recording import Markers, Recording, Stream
from biosig.io.xdf import MAGIC, XDFWriter, read_xdf, write_xdf

_DTYPES = {
    "float32": np.float32,
    "double64": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
}


def _samples_fitting(channel_format: str, n_samples: int, n_channels: int, seed: int = 0):
    """Random float64 samples that the format holds exactly, including its extremes."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(_DTYPES[channel_format])
    if dtype.kind == "f":
        data = (rng.standard_normal((n_samples, n_channels)) * 1e3).astype(dtype)
        extremes = [np.finfo(dtype).max, np.finfo(dtype).tiny]
    else:
        info = np.iinfo(dtype)
        # int64 extremes beyond 2**53 do not survive float64 (Stream's dtype), so stay inside.
        low, high = max(info.min, -(2**53)), min(info.max, 2**53)
        data = rng.integers(low, high, (n_samples, n_channels), endpoint=True)
        extremes = [low, high]
    n_extremes = min(2, n_samples)
    data[:n_extremes, 0] = extremes[:n_extremes]
    return data.astype(np.float64)


def _make_stream(channel_format="float32", n_samples=500, srate=250.0, n_channels=3, **kw):
    timestamps = kw.pop("timestamps", None)
    if timestamps is None:
        timestamps = 1234.5 + np.arange(n_samples) / srate
    return Stream(
        name=kw.pop("name", "EMG"),
        type=kw.pop("type", "EMG"),
        data=_samples_fitting(channel_format, n_samples, n_channels),
        timestamps=timestamps,
        srate=srate,
        channel_labels=[f"E{i}" for i in range(n_channels)],
        channel_units=["uV"] * n_channels,
        channel_types=["EMG"] * (n_channels - 1) + ["AUX"],
        source_id=kw.pop("source_id", "myo-1234"),
        channel_format=channel_format,
        **kw,
    )


def _write(tmp_path, *items, metadata=None, name="rec.xdf", chunk_size=1.0):
    recording = Recording(metadata=dict(metadata or {}))
    for item in items:
        if isinstance(item, Markers):
            recording.add_markers(item)
        else:
            recording.add_stream(item)
    return write_xdf(recording, tmp_path / name, chunk_size=chunk_size)


def _pyxdf_by_name(path, **kw):
    kw.setdefault("dejitter_timestamps", False)
    streams, header = pyxdf.load_xdf(str(path), **kw)
    return {s["info"]["name"][0]: s for s in streams}, header


def _assert_same_stream(got: Stream, want: Stream):
    assert got.name == want.name and got.type == want.type
    assert got.source_id == want.source_id and got.channel_format == want.channel_format
    assert got.srate == want.srate
    assert got.channel_labels == want.channel_labels
    assert got.channel_units == want.channel_units
    assert got.channel_types == want.channel_types
    assert got.metadata == want.metadata
    assert np.array_equal(got.data, want.data, equal_nan=True)
    assert np.array_equal(got.timestamps, want.timestamps)


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("channel_format", list(_DTYPES))
def test_numeric_round_trip_read_by_pyxdf(tmp_path, channel_format):
    stream = _make_stream(channel_format)
    path = _write(tmp_path, stream)

    streams, _ = _pyxdf_by_name(path)
    raw = streams["EMG"]
    assert raw["time_series"].dtype == _DTYPES[channel_format]  # stored in its own format
    assert np.array_equal(raw["time_series"], stream.data.astype(_DTYPES[channel_format]))
    assert np.array_equal(raw["time_stamps"], stream.timestamps)
    info = raw["info"]
    assert info["type"] == ["EMG"] and info["source_id"] == ["myo-1234"]
    assert info["channel_format"] == [channel_format]
    assert float(info["nominal_srate"][0]) == 250.0
    channels = info["desc"][0]["channels"][0]["channel"]
    assert [c["label"][0] for c in channels] == stream.channel_labels
    assert [c["unit"][0] for c in channels] == stream.channel_units
    assert [c["type"][0] for c in channels] == stream.channel_types

    _assert_same_stream(read_xdf(path).streams["EMG"], stream)


def test_float_specials_round_trip(tmp_path):
    stream = _make_stream("float32", n_samples=10, n_channels=1)
    stream.data[2:6, 0] = [np.nan, np.inf, -np.inf, -0.0]
    path = _write(tmp_path, stream)
    got = read_xdf(path).streams["EMG"].data
    assert np.array_equal(got, stream.data, equal_nan=True)
    assert np.signbit(got[5, 0])


def test_jittered_timestamps_round_trip_and_regular_ones_are_compressed(tmp_path):
    # A reader rebuilds an omitted stamp as previous + 1 / srate; stamps made that way (rather
    # than t0 + k / srate, which differs in the last bit now and then) all compress.
    incremental = np.add.accumulate(np.r_[1234.5, np.full(1999, 1 / 250.0)])
    regular = _make_stream("int16", n_samples=2000, n_channels=1, timestamps=incremental)
    jittered = _make_stream("int16", n_samples=2000, n_channels=1)
    jittered.timestamps = jittered.timestamps + np.random.default_rng(1).normal(0, 1e-4, 2000)
    path_regular = _write(tmp_path, regular, name="regular.xdf")
    path_jittered = _write(tmp_path, jittered, name="jittered.xdf")
    for path, stream in [(path_regular, regular), (path_jittered, jittered)]:
        streams, _ = _pyxdf_by_name(path)
        assert np.array_equal(streams["EMG"]["time_stamps"], stream.timestamps)
    # Regular samples leave out their time stamp (8 bytes each), as the specification allows.
    # 8 chunks of 250 samples; the first sample of a chunk always keeps its stamp.
    assert path_jittered.stat().st_size - path_regular.stat().st_size >= 8 * (2000 - 8)


def test_irregular_stream_round_trip(tmp_path):
    timestamps = np.cumsum(np.random.default_rng(2).exponential(0.05, 300)) + 10.0
    stream = _make_stream("double64", n_samples=300, srate=0.0, timestamps=timestamps)
    path = _write(tmp_path, stream, chunk_size=0.5)
    streams, _ = _pyxdf_by_name(path)
    assert float(streams["EMG"]["info"]["nominal_srate"][0]) == 0.0
    assert np.array_equal(streams["EMG"]["time_stamps"], timestamps)
    assert np.array_equal(streams["EMG"]["time_series"], stream.data)
    _assert_same_stream(read_xdf(path).streams["EMG"], stream)


def test_markers_round_trip_unicode_and_empty(tmp_path):
    values = ["rest", "", "fist ✊", "Ünïcødé — 漢字", "a<b>&\"c'", " padded ", "tab\tnew\nl"]
    markers = Markers("labels", np.arange(len(values)) * 0.75 + 3.0, values, source_id="cues")
    path = _write(tmp_path, markers)

    streams, _ = _pyxdf_by_name(path)
    raw = streams["labels"]
    assert raw["info"]["channel_format"] == ["string"]
    assert [v[0] for v in raw["time_series"]] == values
    assert np.array_equal(raw["time_stamps"], markers.timestamps)

    got = read_xdf(path).markers["labels"]
    assert got.values == values and got.type == "Markers" and got.source_id == "cues"
    assert np.array_equal(got.timestamps, markers.timestamps)


def test_metadata_round_trip(tmp_path):
    recording_meta = {"subject": "S01", "odd <key> & more": "line1\r\nline2", "empty": ""}
    stream_meta = {"pH": "7.14", "note": "  spaced  ", "quote": "\"'", "ünï": "✓"}
    stream = _make_stream("double64", n_samples=20, metadata=stream_meta)
    path = _write(tmp_path, stream, metadata=recording_meta)
    recording = read_xdf(path)
    assert recording.metadata == recording_meta
    assert recording.streams["EMG"].metadata == stream_meta
    assert recording.source == path


def test_metadata_with_control_characters_is_refused(tmp_path):
    stream = _make_stream(n_samples=5, metadata={"bad": "a\x00b"})
    with pytest.raises(BiosigError, match="control characters"):
        _write(tmp_path, stream)
    assert list(tmp_path.iterdir()) == []


def test_streams_of_different_rates_and_markers(tmp_path):
    emg = _make_stream("int16", n_samples=4000, srate=2000.0, name="EMG")
    ctg = _make_stream("double64", n_samples=8, srate=4.0, n_channels=2, name="CTG", type="CTG")
    acc = _make_stream("float32", n_samples=200, srate=100.0, name="ACC", type="ACC")
    markers = Markers("labels", [1234.5, 1235.0, 1236.1], ["rest", "fist", "rest"])
    path = _write(tmp_path, emg, ctg, acc, markers, metadata={"session": "2"})

    streams, _ = _pyxdf_by_name(path)
    assert set(streams) == {"EMG", "CTG", "ACC", "labels"}
    for stream in (emg, ctg, acc):
        raw = streams[stream.name]
        assert np.array_equal(raw["time_series"], stream.data.astype(raw["time_series"].dtype))
        assert np.array_equal(raw["time_stamps"], stream.timestamps)
        assert int(raw["footer"]["info"]["sample_count"][0]) == stream.n_samples
    recording = read_xdf(path)
    for stream in (emg, ctg, acc):
        _assert_same_stream(recording.streams[stream.name], stream)
    assert recording.markers["labels"].values == ["rest", "fist", "rest"]


def test_ctg_recording_round_trip(tmp_path, shared_data):
    wfdb = pytest.importorskip("wfdb")
    record = wfdb.rdrecord(str(shared_data / "ctu-uhb-ctgdb" / "1001"))
    n_samples = record.p_signal.shape[0]
    stream = Stream(
        name="CTG",
        type="CTG",
        data=record.p_signal,
        timestamps=np.arange(n_samples) / record.fs,
        srate=record.fs,
        channel_labels=record.sig_name,
        channel_units=record.units,
        channel_format="double64",
        metadata={"comment": "\n".join(record.comments)},
    )
    path = _write(tmp_path, stream, metadata={"record": "1001"})
    streams, _ = _pyxdf_by_name(path)
    assert np.array_equal(streams["CTG"]["time_series"], record.p_signal, equal_nan=True)
    assert np.array_equal(streams["CTG"]["time_stamps"], stream.timestamps)
    _assert_same_stream(read_xdf(path).streams["CTG"], stream)


def test_duplicate_stream_names_are_kept_apart(tmp_path):
    amp_a, amp_b = _make_stream(name="AmpA", n_samples=5), _make_stream(name="AmpB", n_samples=5)
    path = _write(tmp_path, amp_a, amp_b)
    path.write_bytes(path.read_bytes().replace(b"AmpB", b"AmpA"))  # as two hosts would
    recording = read_xdf(path)
    assert sorted(recording.streams) == ["AmpA", "AmpA#2"]


# -- writing: refusals and safety -----------------------------------------------------------


@pytest.mark.parametrize(
    ("channel_format", "value"),
    [("int16", 0.5), ("int16", 40000.0), ("int8", np.nan), ("int32", np.inf), ("float32", 1e-50),
     ("float32", 1e39), ("float32", 0.1)],
)
def test_lossy_values_are_refused_and_leave_the_old_file(tmp_path, channel_format, value):
    path = tmp_path / "rec.xdf"
    path.write_bytes(b"previous contents")
    stream = _make_stream(channel_format, n_samples=300, n_channels=2)
    stream.data[290, 1] = value
    with pytest.raises(BiosigError, match=f"sample 290, channel 1.*{channel_format}"):
        _write(tmp_path, stream)
    assert path.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.xdf"]  # no .part left behind


def test_failure_while_writing_removes_the_partial_file(tmp_path):
    path = tmp_path / "rec.xdf"
    path.write_bytes(b"previous contents")
    stream = _make_stream(n_samples=50)
    markers = Markers("labels", [1234.5, 1234.6], ["ok", "lone surrogate \ud800"])
    with pytest.raises(BiosigError, match="not valid Unicode"):
        _write(tmp_path, stream, markers)  # fails after the signal chunks were written
    assert path.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.xdf"]


def test_writer_refuses_to_overwrite_by_default(tmp_path):
    path = tmp_path / "rec.xdf"
    path.write_bytes(b"an old recording")
    writer = XDFWriter(path)  # constructing opens nothing
    with pytest.raises(BiosigError, match="already exists"):
        writer.open()
    assert path.read_bytes() == b"an old recording"


def test_writer_misuse_gives_clear_errors(tmp_path):
    writer = XDFWriter(tmp_path / "rec.xdf")
    with pytest.raises(BiosigError, match="not open"):
        writer.add_stream(_make_stream(n_samples=0))
    with writer:
        emg = writer.add_stream(_make_stream(n_samples=0))
        cues = writer.add_stream(Markers("cues", [], []))
        with pytest.raises(BiosigError, match="already added"):
            writer.add_stream(_make_stream(n_samples=0))
        with pytest.raises(BiosigError, match="no stream with id 9"):
            writer.write_chunk(9, np.zeros((1, 3)), [0.0])
        with pytest.raises(BiosigError, match="use write_markers"):
            writer.write_chunk(cues, np.zeros((1, 1)), [0.0])
        with pytest.raises(BiosigError, match="use write_chunk"):
            writer.write_markers(emg, [0.0], ["x"])
        with pytest.raises(BiosigError, match="2 channels but 3"):
            writer.write_chunk(emg, np.zeros((1, 2)), [0.0])
        with pytest.raises(BiosigError, match="2 samples but 1 timestamps"):
            writer.write_chunk(emg, np.zeros((2, 3)), [0.0])
        with pytest.raises(BiosigError, match="finite"):
            writer.write_chunk(emg, np.zeros((1, 3)), [np.nan])
    assert writer.closed
    with pytest.raises(BiosigError, match="closed"):
        writer.write_chunk(emg, np.zeros((1, 3)), [0.0])
    writer.close()  # idempotent


def test_writer_chunks_footer_and_clock_offsets(tmp_path):
    path = tmp_path / "live.xdf"
    template = _make_stream("float32", n_samples=0, n_channels=2)
    data = _samples_fitting("float32", 60, 2)
    timestamps = 50.0 + np.arange(60) / 250.0
    with XDFWriter(path, boundary_interval=0.05) as writer:
        emg = writer.add_stream(template)
        for start in range(0, 60, 20):
            writer.write_chunk(emg, data[start : start + 20], timestamps[start : start + 20])
        writer.write_clock_offset(emg, 50.0, 0.5)
        writer.write_clock_offset(emg, 50.2, 0.5)
    assert path.read_bytes().count(bytes.fromhex("43A546DCCBF5410FB30ED5467383CBE4")) >= 2

    streams, _ = _pyxdf_by_name(path, synchronize_clocks=False)
    raw = streams["EMG"]
    assert np.array_equal(raw["time_series"], data.astype(np.float32))
    assert np.array_equal(raw["time_stamps"], timestamps)
    assert raw["clock_values"] == [0.5, 0.5]
    footer = raw["footer"]["info"]
    assert int(footer["sample_count"][0]) == 60
    assert float(footer["first_timestamp"][0]) == timestamps[0]
    assert float(footer["last_timestamp"][0]) == timestamps[-1]
    assert float(footer["measured_srate"][0]) == pytest.approx(250.0)

    synced = read_xdf(path).streams["EMG"].timestamps
    assert np.allclose(synced, timestamps + 0.5, atol=1e-9)
    unsynced = read_xdf(path, synchronize_clocks=False).streams["EMG"].timestamps
    assert np.array_equal(unsynced, timestamps)


def test_dejitter_option_reaches_pyxdf(tmp_path):
    stream = _make_stream("double64", n_samples=400, n_channels=1)
    stream.timestamps = stream.timestamps + np.random.default_rng(3).normal(0, 1e-4, 400)
    path = _write(tmp_path, stream)
    dejittered = read_xdf(path, dejitter_timestamps=True).streams["EMG"].timestamps
    assert np.allclose(np.diff(dejittered), np.diff(dejittered)[0], rtol=0, atol=1e-9)
    assert np.array_equal(read_xdf(path).streams["EMG"].timestamps, stream.timestamps)


# -- crash safety --------------------------------------------------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from biosig.io.recording import Stream
    from biosig.io.xdf import XDFWriter

    path, n_chunks = sys.argv[1], int(sys.argv[2])
    writer = XDFWriter(path).open()
    sid = writer.add_stream(Stream("EMG", "EMG", np.zeros((0, 4)), [], 1000.0,
                                   channel_format="int16"))
    for k in range(10**6):
        if k == n_chunks:
            os.kill(os.getpid(), signal.SIGKILL)
        start = k * 50
        data = (np.arange(start * 4, (start + 50) * 4) % 30000).reshape(50, 4)
        writer.write_chunk(sid, data, (start + np.arange(50)) / 1000.0)
    """
)


def test_writer_killed_with_sigkill_leaves_a_readable_file(tmp_path):
    path = tmp_path / "killed.xdf"
    n_chunks = 7
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(path), str(n_chunks)],
        capture_output=True, timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()

    n = n_chunks * 50
    want = (np.arange(n * 4) % 30000).reshape(n, 4)
    streams, _ = _pyxdf_by_name(path)
    assert "footer" not in streams["EMG"]  # the writer never got to close()
    assert np.array_equal(streams["EMG"]["time_series"], want.astype(np.int16))
    assert np.array_equal(streams["EMG"]["time_stamps"], np.arange(n) / 1000.0)
    assert np.array_equal(read_xdf(path).streams["EMG"].data, want)


def test_truncated_file_reads_up_to_the_last_complete_chunk(tmp_path, caplog):
    path = tmp_path / "live.xdf"
    data = _samples_fitting("float32", 6, 2)
    with XDFWriter(path) as writer:
        sid = writer.add_stream(_make_stream("float32", n_samples=0, n_channels=2))
        writer.write_chunk(sid, data[:3], [0.0, 0.1, 0.2])
        end_of_first = path.stat().st_size
        writer.write_chunk(sid, data[3:], [0.3, 0.4, 0.5])
        end_of_second = path.stat().st_size
    whole = path.read_bytes()
    cut = tmp_path / "cut.xdf"
    # Every cut inside the second chunk, including inside its last sample's values (where
    # pyxdf alone returns a sample made of stale bytes).
    for n_bytes in range(end_of_first + 1, end_of_second):
        cut.write_bytes(whole[:n_bytes])
        with caplog.at_level(logging.WARNING, logger="biosig.io.xdf"):
            stream = read_xdf(cut).streams["EMG"]
        assert np.array_equal(stream.data, data[:3]), n_bytes
        assert np.array_equal(stream.timestamps, [0.0, 0.1, 0.2])
    assert "truncated" in caplog.text
    cut.write_bytes(whole[:end_of_second])  # cut between chunks: nothing lost
    assert np.array_equal(read_xdf(cut).streams["EMG"].data, data)


def _samples_chunk_starts(raw: bytes) -> list[int]:
    """Byte offsets of the Samples chunks (tag 3) of an XDF file's bytes."""
    pos, starts = len(MAGIC), []
    while pos < len(raw):
        n_length_bytes = raw[pos]
        length = int.from_bytes(raw[pos + 1 : pos + 1 + n_length_bytes], "little")
        tag = int.from_bytes(raw[pos + 1 + n_length_bytes : pos + 3 + n_length_bytes], "little")
        if tag == 3:
            starts.append(pos)
        pos += 1 + n_length_bytes + length
    return starts


def test_corruption_in_the_middle_is_survived(tmp_path):
    stream = _make_stream("int16", n_samples=3000, srate=100.0, n_channels=1)
    path = _write(tmp_path, stream, chunk_size=1.0)  # 30 chunks, a Boundary every 10 s
    raw = bytearray(path.read_bytes())
    raw[_samples_chunk_starts(bytes(raw))[4]] = 0x7F  # break the 5th Samples chunk's header
    path.write_bytes(bytes(raw))

    got = read_xdf(path).streams["EMG"]
    assert np.array_equal(got.data[:400], stream.data[:400])  # chunks before the damage
    assert 400 < got.n_samples < stream.n_samples  # pyxdf resumed at a later Boundary chunk
    # Whatever pyxdf recovered after the next Boundary is genuine, in order.
    tail = np.searchsorted(stream.timestamps, got.timestamps[400:])
    assert np.array_equal(stream.timestamps[tail], got.timestamps[400:])
    assert np.array_equal(stream.data[tail], got.data[400:])


@pytest.mark.parametrize("name", ["rec.xdfz", "REC.XDF.GZ", "compressed.xdf"])
def test_gzip_compressed_files_are_read(tmp_path, name):
    stream = _make_stream("int16", n_samples=600)
    plain = _write(tmp_path, stream)
    packed = tmp_path / name
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    _assert_same_stream(read_xdf(packed).streams["EMG"], stream)


def test_truncated_gzip_file_reads_its_complete_chunks(tmp_path):
    stream = _make_stream("int16", n_samples=600)
    plain = _write(tmp_path, stream, chunk_size=0.2)  # 50 samples per chunk
    packed = gzip.compress(plain.read_bytes())
    cut = tmp_path / "cut.xdfz"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    got = read_xdf(cut).streams["EMG"]
    assert 0 < got.n_samples < 600 and got.n_samples % 50 == 0
    assert np.array_equal(got.data, stream.data[: got.n_samples])


def test_corrupt_middle_of_gzip_file_is_survived(tmp_path):
    stream = _make_stream("int16", n_samples=3000, srate=100.0, n_channels=1)
    raw = bytearray(_write(tmp_path, stream).read_bytes())
    start = _samples_chunk_starts(bytes(raw))[4]
    raw[start] = 0x7F
    packed = tmp_path / "damaged.xdfz"
    packed.write_bytes(gzip.compress(bytes(raw)))
    got = read_xdf(packed).streams["EMG"]
    assert np.array_equal(got.data[:400], stream.data[:400])
    assert 400 <= got.n_samples < 3000


# -- files that are not XDF ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"hello, this is text\n", "not an XDF file"),
        (b"XDF", "not an XDF file"),
        (MAGIC, "no complete chunk"),
        (MAGIC + b"\x01\x30\x01\x00<?xml", "no complete chunk"),  # cut inside the FileHeader
        (MAGIC + bytes(range(200, 256)) * 3, "no complete chunk"),
        (MAGIC + b"\x01\x06\x03\x00\x01\x00\x00\x00", "first chunk is not a FileHeader"),
    ],
)
def test_non_xdf_files_raise_biosig_error(tmp_path, content, message):
    path = tmp_path / "bad.xdf"
    path.write_bytes(content)
    with pytest.raises(BiosigError, match=message) as info:
        read_xdf(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_corrupt_xml_raises_biosig_error(tmp_path):
    path = _write(tmp_path, _make_stream(n_samples=5))
    path.write_bytes(path.read_bytes().replace(b"<channel_count>", b"<channel_c0unt>", 1))
    with pytest.raises(BiosigError, match="not a readable XDF file") as info:
        read_xdf(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_raises_biosig_error(tmp_path):
    with pytest.raises(BiosigError, match="not found"):
        read_xdf(tmp_path / "nope.xdf")


# -- the in-memory samples reader (biosig.io._xdf_samples) -------------------------------------


def _read_both_ways(path, monkeypatch):
    """``read_xdf`` through the in-memory samples reader and through pyxdf alone, with the
    number of Samples chunks the in-memory reader parsed."""
    from biosig.io import _xdf_samples
    from biosig.io import xdf as xdf_module

    parse, calls = _xdf_samples._parse, []

    def counting_parse(*args):
        calls.append(1)
        return parse(*args)

    with monkeypatch.context() as patch:
        patch.setattr(_xdf_samples, "_parse", counting_parse)
        fast = read_xdf(path)
    with monkeypatch.context() as patch:
        patch.setattr(xdf_module, "_IN_MEMORY_BYTES", 0)
        plain = read_xdf(path)
    return fast, plain, len(calls)


def _assert_same_recording(got: Recording, want: Recording):
    assert list(got.streams) == list(want.streams) and list(got.markers) == list(want.markers)
    for name, stream in want.streams.items():
        _assert_same_stream(got.streams[name], stream)
    for name, markers in want.markers.items():
        assert got.markers[name].values == markers.values
        assert np.array_equal(got.markers[name].timestamps, markers.timestamps)


@pytest.mark.parametrize("channel_format", list(_DTYPES))
def test_in_memory_samples_reader_gives_pyxdfs_result(tmp_path, monkeypatch, channel_format):
    rng = np.random.default_rng(3)
    n, srate = 1500, 250.0
    regular = 1234.5 + np.arange(n) / srate  # the writer keeps one stamp per chunk
    jittered = regular + rng.normal(0.0, 1e-4, n)  # every stamp kept
    mixed = regular.copy()
    mixed[rng.choice(n, 200, replace=False)] += 1e-3  # some kept, some deduced
    streams = [_make_stream(channel_format, n, srate, name=name, timestamps=stamps)
               for name, stamps in (("regular", regular), ("jittered", jittered),
                                    ("mixed", mixed))]
    markers = Markers("labels", [1234.6, 1236.0, 1237.2], ["rest", "fist ✊", ""])
    path = _write(tmp_path, *streams, markers, chunk_size=0.37)

    fast, plain, parsed = _read_both_ways(path, monkeypatch)
    assert parsed >= 3 * (n / srate / 0.37)  # every numeric Samples chunk went through it
    _assert_same_recording(fast, plain)
    for stream in streams:
        _assert_same_stream(fast.streams[stream.name], stream)


def test_in_memory_samples_reader_leaves_a_damaged_chunk_to_pyxdf(tmp_path, monkeypatch):
    stream = _make_stream("int16", n_samples=3000, srate=100.0, n_channels=2)
    path = _write(tmp_path, stream, chunk_size=1.0)
    raw = bytearray(path.read_bytes())
    start = _samples_chunk_starts(bytes(raw))[4]
    count = start + 1 + raw[start] + 2 + 4  # after the length, the tag and the stream id
    raw[count : count + 2] = b"\x01\xff"  # 255 samples claimed, 100 present
    path.write_bytes(bytes(raw))

    fast, plain, _ = _read_both_ways(path, monkeypatch)
    _assert_same_recording(fast, plain)
    assert fast.streams["EMG"].n_samples < stream.n_samples


def test_in_memory_samples_reader_on_the_bundled_recordings(monkeypatch):
    from pathlib import Path

    for path in sorted((Path(__file__).parents[1] / "recordings").glob("*.xdf")):
        fast, plain, parsed = _read_both_ways(path, monkeypatch)
        assert parsed > 0
        _assert_same_recording(fast, plain)
