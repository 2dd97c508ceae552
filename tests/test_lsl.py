"""LSL layer on loopback: stream metadata, Inlet (gaps, recovery), ResultsOutlet, discovery.

Every stream has a name (and source id) unique to the test, and inlets resolve by those only,
so concurrent test runs on the same host cannot cross-talk.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pylsl
import pytest

from biosig import BiosigError, Markers, Stream
from biosig.cli import main
from biosig.stream.discovery import STREAM_FIELDS, list_streams
from biosig.stream.inlet import Inlet
from biosig.stream.lsl_info import StreamDescription, stream_info_for
from biosig.stream.outlet import ResultsOutlet, make_outlet

SRATE = 200.0


def _pull_until(inlet: Inlet, n_samples: int, timeout: float = 5.0):
    """Pull until ``n_samples`` arrived (or the timeout); return (data, timestamps)."""
    data, stamps = [], []
    deadline = time.monotonic() + timeout
    while sum(len(t) for t in stamps) < n_samples and time.monotonic() < deadline:
        d, t = inlet.pull()
        if len(t):
            data.append(d)
            stamps.append(t)
        time.sleep(0.005)
    if not stamps:
        return np.empty((0, inlet.n_channels)), np.empty(0)
    return np.concatenate(data), np.concatenate(stamps)


def _signal(name: str, n: int = 10, fmt: str = "int16") -> Stream:
    rng = np.random.default_rng(0)
    return Stream(
        name=name,
        type="EMG",
        data=rng.integers(-1000, 1000, size=(n, 4)),
        timestamps=np.arange(n) / SRATE,
        srate=SRATE,
        channel_labels=["flexor", "extensor", "biceps", "triceps"],
        channel_units=["uV"] * 4,
        channel_types=["EMG", "EMG", "EMG", "EMG"],
        source_id=f"{name}-src",
        channel_format=fmt,
    )


# -- metadata --------------------------------------------------------------------------------


def test_stream_info_round_trip(unique_name):
    stream = _signal(unique_name)
    desc = StreamDescription.from_info(stream_info_for(stream))
    assert (desc.name, desc.type, desc.n_channels, desc.srate) == (unique_name, "EMG", 4, SRATE)
    assert desc.channel_format == "int16"
    assert desc.source_id == f"{unique_name}-src"
    assert list(desc.channel_labels) == stream.channel_labels
    assert list(desc.channel_units) == stream.channel_units
    back = desc.to_stream(stream.data, stream.timestamps)
    assert back.channel_labels == stream.channel_labels and back.channel_format == "int16"

    markers = Markers(name=f"{unique_name}-m", timestamps=[0.0], values=["go"])
    mdesc = StreamDescription.from_info(stream_info_for(markers, source_id="m1"))
    assert (mdesc.channel_format, mdesc.n_channels, mdesc.srate) == ("string", 1, 0.0)
    assert mdesc.source_id == "m1"


def test_resolver_results_get_default_channel_labels(unique_name):
    info = pylsl.StreamInfo(unique_name, "EMG", 2, 100, "float32", "")
    desc = StreamDescription.from_info(info)
    assert desc.channel_labels == ("ch1", "ch2") and desc.channel_types == ("EMG", "EMG")


# -- Inlet -----------------------------------------------------------------------------------


def test_inlet_needs_a_query():
    with pytest.raises(BiosigError, match="name, type or source_id"):
        Inlet()


def test_inlet_reports_a_missing_stream(unique_name):
    start = time.monotonic()
    with pytest.raises(BiosigError, match=f"no LSL stream with name='{unique_name}' found"):
        Inlet(name=unique_name, resolve_timeout=0.3).connect()
    assert time.monotonic() - start < 2.0


def test_inlet_reads_metadata_and_exact_samples(unique_name):
    stream = _signal(unique_name, n=300)
    outlet = make_outlet(stream)
    with Inlet(name=unique_name, source_id=f"{unique_name}-src") as inlet:
        assert repr(inlet) == f"<Inlet '{unique_name}' | ON | 4 ch @ 200 Hz>"
        assert inlet.channel_labels == stream.channel_labels
        assert inlet.channel_units == ["uV"] * 4
        assert inlet.channel_format == "int16"
        inlet.check_compatible(n_channels=4, srate=200)
        with pytest.raises(BiosigError, match="has 4 channels but 8 were expected"):
            inlet.check_compatible(n_channels=8)
        with pytest.raises(BiosigError, match="sampled at 200 Hz but 250 Hz"):
            inlet.check_compatible(srate=250)
        assert outlet.wait_for_consumers(5.0)

        start = time.perf_counter()
        data, stamps = inlet.pull()  # nothing sent yet: returns at once
        assert time.perf_counter() - start < 0.05
        assert data.shape == (0, 4) and stamps.shape == (0,)

        t0 = pylsl.local_clock()
        sent_ts = t0 + stream.timestamps
        payload = stream.data.astype(np.int16)
        for i in range(0, 300, 50):
            outlet.push_chunk(payload[i : i + 50], sent_ts[i : i + 50].tolist())
        data, stamps = _pull_until(inlet, 300)
    assert data.dtype == np.float64
    np.testing.assert_array_equal(data, stream.data)
    # One host: the clock offset is microseconds.
    np.testing.assert_allclose(stamps, sent_ts, atol=1e-3, rtol=0)
    assert inlet.stats.samples_received == 300 and not inlet.stats.gaps
    assert inlet.stats.measured_rate == pytest.approx(SRATE, rel=1e-6)
    assert "OFF" in repr(inlet)


def test_gap_accounting(unique_name):
    info = pylsl.StreamInfo(unique_name, "EMG", 1, SRATE, "float32", f"{unique_name}-src")
    outlet = pylsl.StreamOutlet(info)
    inlet = Inlet(name=unique_name).connect()
    assert outlet.wait_for_consumers(5.0)
    index = np.arange(600)
    kept = np.ones(600, dtype=bool)
    kept[100:110] = False  # 10 samples missing
    kept[300:325] = False  # 25 samples missing
    kept[500:501] = False  # 1 sample missing: dt = 2 periods > 1.5 periods
    t0 = pylsl.local_clock()
    values = index[kept].astype(np.float32)[:, None]
    stamps = (t0 + index[kept] / SRATE).tolist()
    for i in range(0, len(values), 64):
        outlet.push_chunk(values[i : i + 64], stamps[i : i + 64])
    data, received = _pull_until(inlet, int(kept.sum()))
    inlet.close()

    np.testing.assert_array_equal(data[:, 0], index[kept])
    gaps = inlet.stats.gaps
    assert [g.n_dropped for g in gaps] == [10, 25, 1]
    assert inlet.stats.n_dropped == 36
    for gap, first_missing, n in zip(gaps, (100, 300, 500), (10, 25, 1)):
        assert gap.duration_s == pytest.approx(n / SRATE, abs=1e-3)
        assert gap.t_start == pytest.approx(received[0] + first_missing / SRATE, abs=1e-3)
    assert inlet.stats.measured_rate == pytest.approx(SRATE, rel=1e-6)


def test_inlet_reads_a_marker_stream(unique_name):
    markers = Markers(name=unique_name, timestamps=[0.0, 0.5], values=["rest", "fist"])
    outlet = make_outlet(markers, source_id=f"{unique_name}-src")
    inlet = Inlet(source_id=f"{unique_name}-src").connect()
    assert repr(inlet) == f"<Inlet '{unique_name}' | ON | 1 ch @ irregular rate>"
    assert outlet.wait_for_consumers(5.0)
    outlet.push_sample(["rest"])
    outlet.push_sample(["fist"])
    values, _ = _pull_until(inlet, 2)
    assert values.tolist() == [["rest"], ["fist"]]


def test_pull_with_timeout_waits_for_the_first_sample_only(unique_name):
    outlet = make_outlet(_signal(unique_name))
    inlet = Inlet(name=unique_name).connect()
    assert outlet.wait_for_consumers(5.0)
    timer = threading.Timer(0.2, outlet.push_chunk, args=(np.ones((3, 4), dtype=np.int16),))
    start = time.monotonic()
    timer.start()
    data, _ = inlet.pull(timeout=3.0)
    waited = time.monotonic() - start
    timer.join()
    assert data.shape == (3, 4)
    assert 0.15 < waited < 1.5


# -- recovery --------------------------------------------------------------------------------


class _RestartingProducer:
    """A 200 Hz, 2-channel outlet whose channel 0 counts samples, and which can be killed.

    Samples are produced at real time, with explicit timestamps, only while the outlet is up
    and has a consumer; so every sample produced can be expected at the inlet, and the hole in
    the timestamps across a restart is known exactly.
    """

    def __init__(self, name: str, source_id: str):
        self.name, self.source_id = name, source_id
        self.outlet = self._create()
        self.produced = 0
        self.timestamps: list[float] = []
        self.expected_gaps: list[float] = []
        self._segment_start = None
        self._segment_count = 0

    def _create(self) -> pylsl.StreamOutlet:
        info = pylsl.StreamInfo(self.name, "EMG", 2, SRATE, "float32", self.source_id)
        return pylsl.StreamOutlet(info)

    def resume(self) -> None:
        start = pylsl.local_clock()
        if self.timestamps:
            self.expected_gaps.append(start - self.timestamps[-1] - 1 / SRATE)
        self._segment_start, self._segment_count = start, 0

    def step(self) -> None:
        """Push the samples that came due since the last step."""
        due = int((pylsl.local_clock() - self._segment_start) * SRATE) - self._segment_count
        if due <= 0:
            return
        stamps = self._segment_start + (self._segment_count + np.arange(due)) / SRATE
        values = np.zeros((due, 2), dtype=np.float32)
        values[:, 0] = self.produced + np.arange(due)
        self.outlet.push_chunk(values, stamps.tolist())
        self.produced += due
        self._segment_count += due
        self.timestamps.extend(stamps.tolist())

    def kill(self) -> None:
        self.outlet = None  # the only reference: liblsl destroys the outlet

    def restart(self) -> None:
        self.outlet = self._create()


@pytest.mark.parametrize("with_source_id", [True, False], ids=["source_id", "no_source_id"])
def test_inlet_recovers_from_outlet_restarts(unique_name, with_source_id):
    restarts, run_s, outage_s = 3, 0.5, 1.0
    producer = _RestartingProducer(unique_name, f"{unique_name}-src" if with_source_id else "")
    inlet = Inlet(name=unique_name).connect()
    received, stamps = [], []

    def pull_for(seconds: float, *, produce: bool = False) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if produce:
                producer.step()
            data, ts = inlet.pull()
            if len(ts):
                received.append(data[:, 0])
                stamps.append(ts)
            time.sleep(0.005)

    def wait_for_consumer(timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while not producer.outlet.have_consumers():
            assert time.monotonic() < end, "the inlet did not reconnect"
            pull_for(0.01)

    def wait_for_disconnect(timeout: float = 5.0) -> None:
        # Without a source id liblsl reports the loss at once; with one, biosig notices after
        # 0.5 s of silence and a probe of up to 0.6 s.
        end = time.monotonic() + timeout
        while inlet.connected:
            assert time.monotonic() < end, "the inlet did not notice the outlet was gone"
            pull_for(0.01)

    wait_for_consumer()
    producer.resume()
    for _ in range(restarts):
        pull_for(run_s, produce=True)
        producer.step()
        if with_source_id:
            # No pull in between: the last samples are still queued in the inlet when the outlet
            # goes, and liblsl keeps them. The pause lets the outlet's sender thread put them on
            # the wire; an outlet destroyed right after a push may never send it.
            time.sleep(0.02)
        else:
            # liblsl discards an inlet's unpulled queue when it raises LostError; so the
            # consumer must have pulled before the outlet goes.
            pull_for(0.05)
        producer.kill()
        pull_for(outage_s)
        wait_for_disconnect()
        producer.restart()
        wait_for_consumer()
        producer.resume()
    pull_for(run_s, produce=True)
    producer.step()
    pull_for(0.3)
    inlet.close()

    values = np.concatenate(received)
    np.testing.assert_array_equal(values, np.arange(producer.produced))  # all, in order, once
    np.testing.assert_allclose(np.concatenate(stamps), producer.timestamps, atol=1e-3, rtol=0)
    stats = inlet.stats
    assert stats.disconnects == restarts and stats.reconnects == restarts
    assert len(stats.gaps) == restarts
    for gap, expected in zip(stats.gaps, producer.expected_gaps):
        assert gap.duration_s == pytest.approx(expected, abs=0.01)
        assert gap.duration_s > outage_s
        assert abs(gap.n_dropped - expected * SRATE) <= 2


# -- outlets and discovery -------------------------------------------------------------------


def test_results_outlet_is_readable_by_a_bare_pylsl_inlet(unique_name):
    classes = ["rest", "fist", "pinch"]
    outlet = ResultsOutlet(classes, name=unique_name, source_id=f"{unique_name}-src")
    assert repr(outlet) == f"<ResultsOutlet '{unique_name}' | ON | 3 classes>"
    (values_info,) = pylsl.resolve_byprop("source_id", f"{unique_name}-src", 1, 5.0)
    (labels_info,) = pylsl.resolve_byprop("name", f"{unique_name}-labels", 1, 5.0)
    values_inlet = pylsl.StreamInlet(values_info)
    labels_inlet = pylsl.StreamInlet(labels_info)
    full = values_inlet.info(5.0)
    assert full.get_channel_labels() == ["p(rest)", "p(fist)", "p(pinch)", "entropy", "predicted"]
    assert full.channel_format() == pylsl.cf_float32 and full.nominal_srate() == 0
    values_inlet.open_stream(5.0)
    labels_inlet.open_stream(5.0)
    assert outlet.have_consumers()

    t_end = pylsl.local_clock()
    outlet.push(t_end, [0.1, 0.7, 0.2], 0.80, 1)
    outlet.push(t_end + 0.1, np.array([0.6, 0.3, 0.1]), 0.90, np.int64(0))
    with pytest.raises(BiosigError, match="2 posteriors for 3 classes"):
        outlet.push(t_end, [0.5, 0.5], 0.7, 0)
    with pytest.raises(BiosigError, match="out of range"):
        outlet.push(t_end, [0.5, 0.3, 0.2], 0.7, 3)

    sample, stamp = values_inlet.pull_sample(timeout=5.0)
    np.testing.assert_allclose(sample, [0.1, 0.7, 0.2, 0.8, 1.0], rtol=1e-6)
    assert stamp == pytest.approx(t_end, abs=1e-6)
    sample, _ = values_inlet.pull_sample(timeout=5.0)
    assert sample[-1] == 0
    assert labels_inlet.pull_sample(timeout=5.0)[0] == ["fist"]
    assert labels_inlet.pull_sample(timeout=5.0)[0] == ["rest"]
    outlet.close()


def test_list_streams_and_cli_table(unique_name, capsys):
    outlet = make_outlet(_signal(unique_name))
    rows = [row for row in list_streams(1.0) if row["name"] == unique_name]
    assert len(rows) == 1
    assert tuple(rows[0]) == STREAM_FIELDS
    assert rows[0]["channels"] == 4 and rows[0]["rate"] == SRATE
    assert rows[0]["format"] == "int16" and rows[0]["source_id"] == f"{unique_name}-src"

    assert main(["streams", "--timeout", "1.0"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["NAME", "TYPE"]
    line = next(line for line in out.splitlines() if line.startswith(unique_name))
    assert "200 Hz" in line and "int16" in line and f"{unique_name}-src" in line
    del outlet


def test_cli_streams_rejects_a_bad_timeout(capsys):
    assert main(["streams", "--timeout", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--timeout" in err and len(err.splitlines()) == 1
