"""Errors that reach the user as one clear line (the CLI prints them without a traceback, exit code 2)."""

from __future__ import annotations


class OpreidError(Exception):
    """Base class of every error a user can cause with bad input; the message must name the file and the fault."""

    exit_code = 2


class DataError(OpreidError):
    """A dataset folder, manifest or image is missing or malformed."""


class FeatureFileError(OpreidError):
    """A feature file (HDF5) is missing, has the wrong layout, or holds invalid values."""


class EvaluationError(OpreidError):
    """Inputs to the evaluator are inconsistent (shapes, NaN/inf, no valid query)."""


class ConfigError(OpreidError):
    """A config file or a --set override is invalid."""


class CheckpointError(OpreidError):
    """A checkpoint is missing, of another method, or does not fit the model."""


class ProtocolError(OpreidError):
    """A split protocol cannot be satisfied or is malformed."""


class OutputError(OpreidError):
    """An output folder is not this command's to write, overlaps an input, or is in use by another run."""


class OnnxModelError(OpreidError):
    """An ONNX model cannot be run on the dataset's crops (input rank, unfillable axis, output, NaN) or exported."""
