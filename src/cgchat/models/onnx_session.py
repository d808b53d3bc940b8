"""ONNX Runtime sessions as every cgchat model runs them: CPU, full graph optimisation, no spinning."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def cpu_session(model_path: Path, threads: int = 0) -> Any:
    """An InferenceSession for ``model_path``; ``threads`` 0 lets ONNX Runtime use one per core.

    No busy-waiting between ops: in a server the encoders share the cores with Postgres and request
    handling, and spinning threads would steal them.
    """
    import onnxruntime as ort  # deferred: a cold start that never embeds never pays for it

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
