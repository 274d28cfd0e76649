"""The nightly-retrain pipeline: one module per step, importable without Airflow."""

import os

# TensorFlow's C++ runtime writes INFO and WARNING lines (oneDNN notices, CUDA probing) to
# stderr, where task logs show them as errors. It reads this before its first import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
