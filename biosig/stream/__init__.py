"""Lab Streaming Layer input/output, replay, and the pipeline with its threads."""

import os
from pathlib import Path

# liblsl reads its configuration once, when it loads: point it at biosig's quiet log setting
# before anything imports pylsl, unless the user chose a configuration of their own.
os.environ.setdefault("LSLAPICFG", str(Path(__file__).with_name("lsl_api.cfg")))
