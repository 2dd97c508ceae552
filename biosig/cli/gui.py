"""``biosig gui``: the live window (signals, envelopes, posteriors, uncertainty, explanations).

Qt and the ``biosig_gui`` package are imported inside :func:`run` only, so ``biosig --help``
and every other command work without the GUI extra installed.
"""

from __future__ import annotations

import logging

from biosig._checks import BiosigError, check_positive

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gui",
        help="live window: signals, classification, uncertainty and explanations",
        description=(
            "Opens the live window on an LSL stream. With no source option it replays the "
            "bundled Myo recording through the bundled Johnson SU model, as if a sensor were "
            "attached. Inside the window a stream picker (with a re-resolve button) and a "
            "model picker switch source and model; the record button writes the stream to a "
            "new XDF file. A CTG stream (FHR/UC) is shown on the cardiotocograph's scales with "
            "the FHR baseline, accelerations, decelerations, contractions and the FIGO "
            "features found by the CTG chain. Needs the GUI extra: pip install \"biosig[gui]\"."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--stream", metavar="NAME", help="attach to the LSL stream of this name")
    source.add_argument("--type", dest="stream_type", metavar="TYPE",
                        help="attach to the LSL stream of this type (e.g. EMG, CTG)")
    source.add_argument("--replay", metavar="FILE",
                        help="replay this recording on LSL (looping) and attach to it")
    parser.add_argument("--model", metavar="MODEL.onnx", help="model for the inference slot")
    parser.add_argument("--no-model", action="store_true", help="signals only, no classifier")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="replay speed multiple (default 1; times are shown in recording time)")
    parser.add_argument("--start", type=float, default=None,
                        help="where the replay starts in the recording, s (default 0; 60 for the "
                             "bundled Myo session)")
    parser.add_argument("--window", type=float, dest="view_s", metavar="SECONDS",
                        help="seconds of signal shown (default 10, or 1200 for CTG)")
    parser.add_argument("--no-explain", action="store_true", help="do not run the explainers")
    parser.add_argument("--record-dir", default=".", help="folder the record button writes to (default .)")
    parser.add_argument("--screenshot", metavar="PATH.png",
                        help="run headless (offscreen), save a PNG of the window and exit")
    parser.add_argument("--quit-after", type=float, metavar="SECONDS",
                        help="close the window after this many seconds (with --screenshot: when "
                             "to take it; default 8)")
    parser.add_argument("--size", default="1600x1000", help="window size WIDTHxHEIGHT (default 1600x1000)")
    parser.set_defaults(func=run)


def run(args) -> int:
    try:
        import pyqtgraph  # noqa: F401
        import PySide6  # noqa: F401
        from biosig_gui.app import run as run_gui
        from biosig_gui.window import GuiOptions
    except ImportError as err:
        raise BiosigError(f"the GUI needs PySide6 and pyqtgraph ({err}); "
                          'pip install "biosig[gui]"') from None
    from biosig.cli.demo import DEFAULT_MODEL, DEFAULT_RECORDING, bundled_models_dir, bundled_recordings_dir

    options = GuiOptions(
        stream=args.stream, stream_type=args.stream_type, replay=args.replay, model=args.model,
        speed=check_positive(args.speed, "--speed"), view_s=args.view_s,
        explain=not args.no_explain, record_dir=args.record_dir,
        start_s=check_positive(args.start if args.start is not None else 0.0, "--start",
                               allow_zero=True),
    )
    if options.view_s is not None:
        check_positive(options.view_s, "--window")
    if not (args.stream or args.stream_type or args.replay):
        # The embedded default: the bundled session replayed as a sensor, through its model.
        options.replay = str(bundled_recordings_dir() / DEFAULT_RECORDING)
        options.start_s = 60.0 if args.start is None else options.start_s
        if args.model is None:
            default = bundled_models_dir() / DEFAULT_MODEL
            options.model = str(default) if default.exists() else None
    if args.no_model:
        options.model = None
    if options.model is not None:
        from pathlib import Path

        if not Path(options.model).is_file():
            raise BiosigError(f"model file not found: {options.model}")
    quit_after = args.quit_after
    if args.screenshot and quit_after is None:
        quit_after = 8.0
    if quit_after is not None:
        check_positive(quit_after, "--quit-after")
    return run_gui(options, screenshot=args.screenshot, quit_after=quit_after,
                   size=_size(args.size))


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BiosigError(f"--size must look like 1600x1000, got {text!r}") from None
    if width < 400 or height < 300:
        raise BiosigError(f"--size must be at least 400x300, got {text!r}")
    return width, height
