"""Loads TensorFlow with its start-up lines in the log at DEBUG rather than on stderr.

TensorFlow's C++ runtime writes notices (oneDNN, CPU features, CUDA probing) to file
descriptor 2 while it loads, before its own log settings apply, so `TF_CPP_MIN_LOG_LEVEL`
does not silence them, and Airflow shows whatever a task writes to stderr as errors. They
are kept at DEBUG: at the usual INFO level neither task logs nor the `retrain` CLI show them. Every
step that needs TensorFlow calls `load_tensorflow()` first; later imports find it loaded.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from types import ModuleType

log = logging.getLogger(__name__)


def load_tensorflow() -> ModuleType:
    """Imports TensorFlow once, logging what it wrote to stderr while loading at DEBUG."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            sys.stderr.flush()
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip():
                    log.debug("tensorflow: %s", line.strip())
    return tensorflow
