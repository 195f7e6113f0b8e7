"""mediapipe's native log lines stay off the terminal; everything else written to descriptor 2 still reaches it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from opreid_bench.native_logs import quiet_native_logs

XNNPACK = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
FEEDBACK = (b"W0000 00:00:1796638285.203422    4240 inference_feedback_manager.cc:114] Feedback manager requires a "
            b"model with a single signature inference. Disabling support for feedback tensors.\n")
REAL_ERROR = b"E0000 00:00:1796638285.3    4240 calculator_graph.cc:887] INTERNAL: the graph failed\n"


def test_the_known_lines_are_dropped_and_the_rest_passes_in_order(capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    with quiet_native_logs():
        os.write(2, b"before ")  # e.g. a progress frame with no newline yet
        os.write(2, XNNPACK)
        os.write(2, REAL_ERROR)
        with quiet_native_logs():  # nested: the outer block does the filtering
            os.write(2, FEEDBACK)
        os.write(2, b"after\n")
    assert capfd.readouterr().err == "before " + REAL_ERROR.decode() + "after\n"


def test_an_exception_in_the_block_still_restores_the_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    with pytest.raises(RuntimeError), quiet_native_logs():
        os.write(2, FEEDBACK + b"kept\n")
        raise RuntimeError
    os.write(2, b"written after\n")
    assert capfd.readouterr().err == "kept\nwritten after\n"


def test_blazeface_in_a_fresh_process_prints_none_of_its_start_up_lines() -> None:
    """The first model build and call of a process is where mediapipe prints its chatter."""
    pytest.importorskip("mediapipe")
    code = ("from PIL import Image; from opreid_bench.splits.face_detect import detect_faces_mediapipe; "
            "print(detect_faces_mediapipe(Image.new('RGB', (64, 128), (90, 90, 90))))")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert got.stdout.strip() == "[]"
    assert "XNNPACK" not in got.stderr and "inference_feedback_manager" not in got.stderr, got.stderr
