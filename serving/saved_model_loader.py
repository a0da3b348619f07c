"""Finds and loads SavedModel versions laid out as ``<base>/<version>/saved_model.pb``.

A version directory may still be being written when it is first seen (the
stock TFX Pusher copies files one by one into ``<base>/<version>/``, the root's
``saved_model.pb`` before ``variables/``). :func:`version_files` lists
everything under it (names, sizes, modification times) so a caller can wait
until that listing stops changing, and reports whether the writer left the
:data:`READY_MARKER` file, which says the version is complete at once.

Loading imports the ``serve`` MetaGraph into a graph-mode session, as
``tensorflow_model_server`` does (:mod:`serving.session_model`), keeps its exact
``SignatureDef``s (for GetModelMetadata) and warms up its ``serving_default``
signature with a tiny request built from the signature.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses
import json
import logging

from tensorflow.core.protobuf import config_pb2

from serving import tensors
from serving.session_model import SessionModel

try:
    # Registers the `Scann>` custom ops so models with an embedded ScaNN index load.
    from scann.scann_ops.py import scann_ops
except ImportError:  # pure-TF models still load without scann
    scann_ops = None

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
# Written by models.serving_export beside each export (not imported: serving
# stays independent of the training layers).
EXPORT_METADATA = "retrieval_export.json"

# An exporter that writes a version straight into the served base path creates
# this (empty) file in ``<base>/<version>/`` after every other file, so the
# version is loaded without waiting for its files to settle. It must be written
# in the served directory itself, never into a directory that is copied there
# later: a file-by-file copy may bring the marker over before variables/.
READY_MARKER = "retrieval_serve.ready"


@dataclasses.dataclass(frozen=True)
class ServedModel:
    """One loaded, warmed-up model version. Immutable so it can be shared.

    Attributes:
        version: Numeric version (the subdirectory name).
        path: Version directory.
        signatures: Signature name -> ``SessionSignature`` (numpy in and out;
            its ``input_specs`` are the signature's inputs).
        signature_defs: Signature name -> ``SignatureDef`` proto from saved_model.pb.
        loaded: The ``SessionModel`` whose session runs the signatures.
        max_history: The history length the model reads, from the export's
            ``assets.extra/retrieval_export.json``; None when it has none.
    """

    version: int
    path: str
    signatures: dict
    signature_defs: dict
    loaded: object
    max_history: int | None = None


def _model_file(version_dir: str) -> str | None:
    """Returns the saved_model.pb(txt) path inside ``version_dir`` if present."""
    for name in ("saved_model.pb", "saved_model.pbtxt"):
        path = os.path.join(version_dir, name)
        if os.path.isfile(path):
            return path
    return None


def scan_versions(base_path: str) -> dict[int, tuple[float, int]]:
    """Lists candidate versions under ``base_path``.

    A version counts once its directory holds ``saved_model.pb``; directories
    without it or with non-numeric names are skipped. A listed version may
    still be incomplete: see :func:`version_files`.

    Returns:
        Mapping version -> (mtime, size) of its saved_model file.
    """
    found = {}
    try:
        names = os.listdir(base_path)
    except OSError as err:
        log.warning("cannot list model base path %s: %s", base_path, err)
        return found
    for name in names:
        if not (name.isascii() and name.isdigit()):
            continue
        model_file = _model_file(os.path.join(base_path, name))
        if model_file is None:
            continue
        try:
            stat = os.stat(model_file)
        except OSError:  # removed since it was listed
            continue
        found[int(name)] = (stat.st_mtime, stat.st_size)
    return found


@dataclasses.dataclass(frozen=True)
class VersionFiles:
    """Everything under one version directory, to tell whether it still changes.

    Attributes:
        entries: Sorted ``(relative path, size, mtime_ns)``; directories have
            size and mtime -1, so creating an empty ``variables/`` counts.
        ready: The :data:`READY_MARKER` file is present.
    """

    entries: tuple[tuple[str, int, int], ...]
    ready: bool


def version_files(version_dir: str) -> VersionFiles:
    """Lists ``version_dir`` recursively; entries that vanish meanwhile are left out."""
    entries = []
    for root, dirs, files in os.walk(version_dir):
        rel_root = os.path.relpath(root, version_dir)
        for name in dirs:
            entries.append((os.path.normpath(os.path.join(rel_root, name)), -1, -1))
        for name in files:
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            entries.append(
                (os.path.normpath(os.path.join(rel_root, name)), stat.st_size,
                 stat.st_mtime_ns)
            )
    entries.sort()
    ready = os.path.isfile(os.path.join(version_dir, READY_MARKER))
    return VersionFiles(tuple(entries), ready)


def read_max_history(version_dir: str) -> int | None:
    """The ``max_history`` the export's metadata asset declares, if any.

    Raises:
        ValueError: If the asset exists but is not JSON with an integer >= 1.
    """
    path = os.path.join(version_dir, "assets.extra", EXPORT_METADATA)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            value = json.load(f).get("max_history")
        except (json.JSONDecodeError, AttributeError) as err:
            raise ValueError(f"{path} is not a JSON object: {err}") from err
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{path}: max_history is {value!r}; expected an integer >= 1")
    return value


def configure_sessions(intra_op_threads: int = 0, inter_op_threads: int = 0) -> None:
    """Thread pools of the sessions later loads create (0 = TensorFlow's default).

    Sessions share the process-wide pools, sized by these numbers.
    """
    global _SESSION_CONFIG
    _SESSION_CONFIG = config_pb2.ConfigProto(
        intra_op_parallelism_threads=intra_op_threads,
        inter_op_parallelism_threads=inter_op_threads,
    )


_SESSION_CONFIG: config_pb2.ConfigProto | None = None


def load_version(version_dir: str, version: int) -> ServedModel:
    """Loads one version in graph mode and warms up its ``serving_default``.

    Args:
        version_dir: ``<base_path>/<version>``.
        version: The numeric version.

    Returns:
        The ready-to-serve model.

    Raises:
        Exception: Whatever loading, parsing or the warm-up call raised.
    """
    max_history = read_max_history(version_dir)
    loaded = SessionModel(version_dir, _SESSION_CONFIG)
    signatures = loaded.signatures
    default = signatures.get(DEFAULT_SIGNATURE)
    if default is not None:
        # A model that loads but cannot run must not replace a working one.
        default(tensors.warmup_arrays(default.input_specs))
    else:
        log.warning(
            "version %d has no '%s' signature; skipping warm-up",
            version,
            DEFAULT_SIGNATURE,
        )
    return ServedModel(
        version, version_dir, signatures, loaded.signature_defs, loaded, max_history,
    )
