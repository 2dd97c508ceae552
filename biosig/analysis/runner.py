"""Run :func:`~biosig.analysis.batch.analyze_recording` over many recordings and gather the output.

Three ways to run the same per-recording function (:func:`~biosig.analysis.batch.run_task`):

- **here**, in this process, when one worker suffices (``jobs=1`` or one recording); the
  windows progress bar then moves chunk by chunk;
- a **local process pool** (:class:`concurrent.futures.ProcessPoolExecutor`, ``forkserver``
  start where the platform has it, so no worker inherits onnxruntime's threads by ``fork``)
  with ``jobs`` workers, the default. onnxruntime's threads are shared out: each worker gets
  ``cpu_count // jobs`` of them;
- a **Dask distributed** cluster (``scheduler`` = its address, e.g. ``tcp://10.0.0.5:8786``;
  Dask is imported only then). Workers need biosig installed and the model and recordings
  readable at the same paths (shared storage). Results come back to this process.

Whichever runs it, this process writes every result (:mod:`biosig.analysis.output`) as it
arrives, so the output folder is the same. A recording that fails is reported and skipped; the
others finish. Recordings already complete (same model, file and options) are skipped unless
``force``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

from biosig._checks import BiosigError, check_int
from biosig.analysis import output
from biosig.analysis.batch import (
    ModelSettings,
    RecordingFailure,
    RecordingTask,
    first_line,
    load_model,
    run_task,
)
from biosig.analysis.summary import TABLE_COLUMNS, aggregate, failure_summary, table_row

logger = logging.getLogger(__name__)

DASK_HINT = 'pip install "biosig[dask]"'


@dataclass
class AnalysisRun:
    """What a run did.

    Attributes
    ----------
    out : Path
        The output folder.
    summaries : list of dict
        One per recording, in input order (failed ones with ``status`` "failed").
    computed, skipped : list of str
        Names of the recordings analysed now, and of those already complete.
    failed : list of RecordingFailure
    aggregate : dict
        :func:`biosig.analysis.summary.aggregate` of the summaries.
    report : Path or None
        The HTML report.
    """

    out: Path
    summaries: list = field(default_factory=list)
    computed: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    aggregate: dict = field(default_factory=dict)
    report: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def n_windows(self) -> int:
        return int(self.aggregate.get("n_windows", 0))


def _prepare_out(out) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BiosigError(f"--out {out} exists and is not a folder")
    (out / output.RECORDINGS_DIR).mkdir(parents=True, exist_ok=True)
    return out


def _bars(n_files: int, enabled: bool):
    """The files and windows progress bars; both off where stderr is no terminal (a batch
    job's log), which gets one line per recording instead (:func:`_log_line`)."""
    from tqdm import tqdm

    on = enabled and sys.stderr.isatty()
    files = tqdm(total=n_files, desc="recordings", unit="file", position=0, disable=not on)
    windows = tqdm(desc="windows", unit="win", position=1, disable=not on, unit_scale=True)
    return files, windows


def _log_line(done: int, total: int, name: str, outcome) -> str:
    """A recording's line in a log: ``[3/12] name: 9544 windows`` or ``[3/12] failed: why``."""
    if isinstance(outcome, RecordingFailure):
        return f"[{done}/{total}] failed: {outcome.describe()}"
    return f"[{done}/{total}] {name}: {outcome.summary['n_windows']} windows"


def run_analysis(model_path, inputs, out, *, jobs: int | None = None, scheduler: str | None = None,
                 force: bool = False, csv: bool = False, explain: bool = False,
                 settings: ModelSettings | None = None, progress: bool = True,
                 report: bool = True) -> AnalysisRun:
    """Analyse recordings with a model and write results, summaries and the report into ``out``.

    Parameters
    ----------
    model_path : str or Path
        The ``.onnx`` model; its pipeline settings decide preprocessing and features.
    inputs : list of str or Path
        Files, folders or glob patterns (:func:`biosig.io.iter_inputs`).
    out : str or Path
        Output folder (layout: :mod:`biosig.analysis.output`).
    jobs : int or None
        Local worker processes; None: one per CPU (at most one per recording).
    scheduler : str or None
        Address of a Dask distributed scheduler; replaces the local pool.
    force : bool
        Redo recordings that are already complete.
    csv : bool
        Also write each per-window table as CSV.
    explain : bool
        Add the mutual-information and prototype figures to the report.
    settings : ModelSettings or None
        Decision settings (rejection, smoothing) and onnxruntime options.
    progress : bool
        Show progress bars (files and windows).
    report : bool
        Write ``report.html`` and ``figures/`` (False: results and summaries only).

    Returns
    -------
    AnalysisRun
    """
    from biosig.analysis.report import write_report
    from biosig.io import iter_inputs

    settings = settings or ModelSettings()
    if jobs is not None:
        check_int(jobs, "--jobs", minimum=1)
    paths = iter_inputs(inputs)
    if not paths:
        raise BiosigError("no recordings found in the given inputs")
    model = load_model(model_path, settings)  # a bad model is the user's mistake: stop here
    model.pipeline_config()
    out = _prepare_out(out)
    model_sha = output.file_sha256(model.path)
    run = AnalysisRun(out=out)
    pending, fingerprints = [], {}
    for name, path in zip(output.recording_names(paths), paths):
        task = RecordingTask(name, str(Path(path).resolve()), str(model.path.resolve()), settings)
        fingerprints[name] = output.fingerprint(model_sha, path, settings.fingerprint(), csv)
        if not force and output.is_complete(output.recording_dir(out, name), fingerprints[name]):
            run.skipped.append(name)
        else:
            pending.append(task)
    if run.skipped:
        logger.info("%d recording(s) already complete, skipped (--force redoes them)",
                    len(run.skipped))
    # Connect before any work, so an unreachable scheduler is one clear error.
    client = dask_client(scheduler) if scheduler is not None and pending else None
    try:
        outcomes = _execute(pending, run, fingerprints, out, csv, jobs, client, progress)
    finally:
        if client is not None:
            client.close()
    by_name = {name: output.read_recording_summary(out, name) for name in run.skipped}
    by_name.update(outcomes)
    run.summaries = [by_name[name] for name in output.recording_names(paths)]
    run.aggregate = aggregate(run.summaries)
    _write_run_summary(out, run, model_path, inputs, settings, scheduler)
    if report:
        run.report = write_report(out, model, run.summaries, run.aggregate, explain=explain,
                                  progress=progress)
    return run


def _execute(tasks, run, fingerprints, out, csv, jobs, client, progress) -> dict:
    """Run the tasks, writing each result as it arrives; returns summaries by name."""
    total = len(tasks) + len(run.skipped)
    files_bar, windows_bar = _bars(total, progress)
    files_bar.update(len(run.skipped))
    log_lines = progress and files_bar.disable
    summaries = {}
    workers = min(jobs or os.cpu_count() or 1, len(tasks))
    # In this process the windows bar moves chunk by chunk; from workers, per recording.
    here = client is None and workers <= 1
    try:
        if client is not None:
            stream = _run_dask(tasks, client)
        elif here:
            stream = _run_here(tasks, windows_bar.update)
        else:
            stream = _run_pool(tasks, workers)
        for task, outcome in stream:
            if isinstance(outcome, RecordingFailure):
                run.failed.append(outcome)
                summaries[task.name] = failure_summary(task.name, task.path, outcome.error)
                if not log_lines:
                    files_bar.write(f"failed: {outcome.describe()}")
            else:
                output.write_recording(out, outcome, fingerprints[task.name], with_csv=csv)
                run.computed.append(task.name)
                summaries[task.name] = outcome.summary
                if not here:
                    windows_bar.update(outcome.summary["n_windows"])
            files_bar.update(1)
            if log_lines:
                done = len(run.skipped) + len(run.computed) + len(run.failed)
                print(_log_line(done, total, task.name, outcome), file=sys.stderr, flush=True)
    finally:
        windows_bar.close()
        files_bar.close()
    return summaries


def _run_here(tasks, on_windows):
    for task in tasks:
        yield task, run_task(task, on_windows)


#: Imported once by the fork server, so every worker forked from it starts with them loaded.
_WORKER_PRELOAD = ["biosig.analysis.batch", "biosig.analysis.summary", "biosig.analysis.quality",
                   "biosig.inference", "biosig.io", "biosig.stream.pipeline", "pyarrow"]


def _pool_context():
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_WORKER_PRELOAD)
    return context


def _run_pool(tasks, workers: int):
    cpus = os.cpu_count() or 1
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context())
    try:
        futures = {}
        for task in tasks:
            if task.settings.threads is None:
                task = replace(task, settings=replace(task.settings, threads=max(1, cpus // workers)))
            futures[executor.submit(run_task, task)] = task
        for future in as_completed(futures):
            task = futures[future]
            try:
                yield task, future.result()
            except Exception as err:  # noqa: BLE001 - a dead worker fails its recording only
                yield task, RecordingFailure(task.name, task.path, first_line(err))
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown()


def dask_client(address: str):
    """A Dask distributed client for the scheduler at ``address`` (Dask imported only here)."""
    try:
        from distributed import Client
    except ImportError:
        raise BiosigError(f"--scheduler needs Dask distributed; install it with: {DASK_HINT}") from None
    try:
        return Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as err:
        raise BiosigError(f"cannot reach the Dask scheduler at {address} ({first_line(err)})") from None


def _run_dask(tasks, client):
    from distributed import as_completed as dask_completed

    tag = uuid.uuid4().hex[:8]
    futures = {client.submit(run_task, task, key=f"biosig-analyze-{task.name}-{tag}",
                             pure=False): task for task in tasks}
    try:
        for future, value in dask_completed(list(futures), with_results=True, raise_errors=False):
            task = futures[future]
            if isinstance(value, BaseException):
                value = RecordingFailure(task.name, task.path, first_line(value))
            yield task, value
    except BaseException:
        client.cancel(list(futures))
        raise


def _write_run_summary(out: Path, run: AnalysisRun, model_path, inputs, settings, scheduler) -> None:
    import csv as csv_module
    import io

    rows = [table_row(s) for s in run.summaries]
    buffer = io.StringIO()
    writer = csv_module.DictWriter(buffer, fieldnames=list(TABLE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    output.atomic_write_text(out / "summary.csv", buffer.getvalue())
    output.atomic_write_json(out / "summary.json", {
        "model": str(model_path),
        "inputs": [str(i) for i in inputs],
        "settings": settings.fingerprint(),
        "scheduler": scheduler,
        "aggregate": run.aggregate,
        "computed": run.computed,
        "skipped": run.skipped,
        "failed": [{"name": f.name, "path": f.path, "error": f.error} for f in run.failed],
        "recordings": run.summaries,
    })
