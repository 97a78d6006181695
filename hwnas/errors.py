"""The exceptions hwnas raises for expected failures: bad input, unreadable files, unusable settings.

Every message reads ``<what>, <where>, <what was expected>`` (e.g. ``"latency table entry is Infinity, rtx2080.json
layers[2].entries[5], expected a finite latency_ms >= 0"``). Every command-line tool turns any :class:`HwnasError`
into ``error: <message>`` on stderr and exit status 2 (:func:`hwnas._cli.run_main`), never a traceback.

The subclasses also derive from ``ValueError`` (``OutputError`` from ``OSError``) so code written against the
built-in types keeps working.
"""
from __future__ import annotations


class HwnasError(Exception):
    """Base class of every expected hwnas failure; the message names the file or option at fault."""


class UsageError(HwnasError, ValueError):
    """A command-line option or API argument has a value hwnas cannot use (too small, unknown, non-finite...)."""


class DatasetError(HwnasError, ValueError):
    """A dataset folder is missing, empty, misnamed or has unexpected counts (the message names the path)."""


class ImageReadError(DatasetError):
    """An image file is corrupt, truncated, too large or not an image (the message names the file)."""


class GenotypeError(HwnasError, ValueError):
    """A genotype (file, string or object) that does not describe a valid architecture."""


class LatencyTableError(HwnasError, ValueError):
    """A latency table (file or object) that is malformed or does not fit the requested use."""


class CheckpointError(HwnasError, ValueError):
    """A checkpoint that is missing, unreadable, incompatible or from a different run (the message names the file)."""


class ConfigError(HwnasError, ValueError):
    """A configuration file or ``key=value`` override that is unreadable, unknown or of the wrong type."""


class ExportError(HwnasError, ValueError):
    """A model cannot be exported or run on a deployment runtime at the requested setting."""


class RuntimeUnavailableError(HwnasError, RuntimeError):
    """An optional runtime or device (CUDA, Triton, onnxruntime, OpenVINO, the compiled extension) is missing."""


class DivergedError(HwnasError, FloatingPointError):
    """A search or training diverged: a loss, an architecture weight (alpha) or a metric became NaN or infinite
    (the message names the epoch/step and what to change, e.g. a lower learning rate)."""


class OutputError(HwnasError, OSError):
    """An output path cannot be written: it is a file where a folder is needed, not writable, locked by another
    run, or would overwrite a shipped or non-empty location."""


__all__ = ["CheckpointError", "ConfigError", "DatasetError", "DivergedError", "ExportError", "GenotypeError",
           "HwnasError", "ImageReadError", "LatencyTableError", "OutputError", "RuntimeUnavailableError", "UsageError"]
