"""Pulling a 1024 x 65 float32 chunk: biosig's Inlet against a plain pylsl list pull.

Usage::

    python benchmarks/inlet_pull.py [--repeats 300] [--channels 65] [--samples 1024]

An outlet on loopback pushes one chunk of ``samples`` x ``channels`` float32 (64 EMG channels
and a trigger, 1024 samples: half a second of high-density EMG at 2048 Hz); once the chunk is
queued in each inlet (``samples_available``), one pull is timed:

- baseline: ``pylsl.StreamInlet.pull_chunk(max_samples=1024)``, Python lists (the common
  idiom), then ``np.asarray`` to get an array, as a consumer must;
- the same pull with ``as_numpy=True`` (pylsl's own array path), for reference;
- ``biosig.stream.inlet.Inlet.pull()``: preallocated ``dest_obj`` in the stream's dtype, one
  float64 conversion, clock correction, gap and clock-jump accounting.

Prints p50/p99 in microseconds and the ratio baseline / biosig.
"""

from __future__ import annotations

import argparse
import time
import uuid

import numpy as np
import pylsl

from biosig.stream.inlet import Inlet


def wait_queued(lsl_inlet, n: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while lsl_inlet.samples_available() < n:
        if time.monotonic() > deadline:
            raise RuntimeError("chunk did not arrive")
        time.sleep(0.0005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--channels", type=int, default=65)
    parser.add_argument("--samples", type=int, default=1024)
    args = parser.parse_args()
    n, ch = args.samples, args.channels
    name = f"biosig-bench-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo(name, "EMG", ch, 2048.0, "float32", name)
    outlet = pylsl.StreamOutlet(info, chunk_size=n, max_buffered=60)
    plain = pylsl.StreamInlet(pylsl.resolve_byprop("name", name, timeout=5)[0], max_buflen=60)
    plain.open_stream(timeout=5)
    ours = Inlet(name=name, chunk_max_samples=n, max_buffer_s=60).connect()
    while outlet.have_consumers() is False:
        time.sleep(0.01)
    time.sleep(0.2)
    chunk = np.random.default_rng(0).normal(size=(n, ch)).astype(np.float32)
    times = {"pylsl lists + np.asarray (baseline)": [], "pylsl as_numpy=True": [], "biosig Inlet.pull": []}
    keys = list(times)
    t = pylsl.local_clock()
    for r in range(args.repeats + 20):
        stamps = (t + (r * n + np.arange(n)) / 2048.0).tolist()
        outlet.push_chunk(chunk, stamps)
        wait_queued(plain, n)
        wait_queued(ours._lsl, n)  # the wrapped pylsl inlet: only to know the chunk is queued
        mode = r % 2  # alternate the two pylsl variants on the plain inlet
        start = time.perf_counter()
        if mode == 0:
            values, ts = plain.pull_chunk(max_samples=n)
            data = np.asarray(values, dtype=np.float32)
        else:
            data, ts = plain.pull_chunk(max_samples=n, as_numpy=True)
        mid = time.perf_counter()
        ours_data, ours_ts = ours.pull()
        end = time.perf_counter()
        complete = data.shape == (n, ch) and ours_data.shape == (n, ch)
        while ours_data.shape[0] < n or data.shape[0] < n:  # samples_available ran ahead
            if ours_data.shape[0] < n:
                ours_data = np.concatenate([ours_data, ours.pull(timeout=1.0)[0]])
            if data.shape[0] < n:
                data = np.concatenate([data, plain.pull_chunk(timeout=1.0, max_samples=n, as_numpy=True)[0]])
        np.testing.assert_array_equal(ours_data, chunk)
        if r >= 20 and complete:
            times[keys[mode]].append(mid - start)
            times[keys[2]].append(end - mid)
    print(f"pull of {n} x {ch} float32 on loopback, {args.repeats} repeats")
    print(f"{'':<38}{'p50 us':>10}{'p99 us':>10}")
    summary = {}
    for key, values in times.items():
        p50, p99 = np.percentile(np.asarray(values) * 1e6, [50, 99])
        summary[key] = p50
        print(f"{key:<38}{p50:>10.0f}{p99:>10.0f}")
    ratio = summary[keys[0]] / summary[keys[2]]
    print(f"baseline / biosig (p50): {ratio:.1f}x; pylsl as_numpy / biosig: "
          f"{summary[keys[1]] / summary[keys[2]]:.2f}x")
    print(f"inlet stats: {ours.stats.samples_received} samples, {len(ours.stats.gaps)} gaps, "
          f"{len(ours.stats.clock_jumps)} clock jumps")
    ours.close()


if __name__ == "__main__":
    main()
