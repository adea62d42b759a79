"""Saving and loading networks without pickle.

File format (version 1): a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) holding

    header   uint8 array: UTF-8 JSON {"format": "pyfastnn.MLP", "format_version": 1, "pyfastnn_version",
             "layer_sizes", "activations", "dtype", "init", "straight_through", "sha256"}
    W0..W{L-1}, b0..b{L-1}   the weights (N_l, N_{l-1}) and biases (N_l,) in the network's dtype; W0 of a
             network in the embedding layout is stored in Fortran order (the .npy header says so) and
             loads in that layout

``sha256`` is the hex digest of the raw bytes of W0, b0, W1, b1, ... in that order: a file whose arrays were
changed or damaged fails to load. Arrays are read with ``allow_pickle=False``, so a file cannot run code.
"""

import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "pyfastnn.MLP"
FORMAT_VERSION = 1


def _digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _interleaved(net):
    return [a for pair in zip(net.weights, net.biases) for a in pair]


def save(net, path):
    """Write ``net`` to ``path`` (the name is used as given; ``.npz`` is not appended). Atomic: a crash mid-write
    leaves any earlier file intact."""
    from . import __version__

    net._check_parameters()
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pyfastnn_version": __version__,
        "layer_sizes": net.layer_sizes,
        "activations": net.activations,
        "dtype": net.dtype.name,
        "init": net.init,
        "straight_through": net.straight_through,
        "sha256": _digest(_interleaved(net)),
    }
    arrays = {"header": np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"W{l}"] = w
        arrays[f"b{l}"] = b
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".pyfastnn-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path):
    """Read a network written by :func:`save`. Raises ValueError for a file that is not one, is truncated,
    was written by a newer format version, or whose arrays do not match their recorded checksum."""
    from .network import MLP, check_dtype

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such model file: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array or a text file
            raise ValueError("not an .npz archive")
        with loaded as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a pyfastnn model file (not a readable .npz archive: {exc})") from None
    odd = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))
    if odd:
        raise ValueError(f"{path} is not a pyfastnn model file (members that are not arrays: {odd})")
    if "header" not in arrays:
        raise ValueError(f"{path} is not a pyfastnn model file (no header; arrays found: {sorted(arrays)})")
    try:
        header = json.loads(arrays["header"].tobytes().decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a pyfastnn model file (unreadable header: {exc})") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pyfastnn model file (format {header.get('format')!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ValueError(
            f"{path} has format version {version!r}; this pyfastnn reads versions up to {FORMAT_VERSION}"
        )
    try:
        sizes = [int(s) for s in header["layer_sizes"]]
        activations = [str(a) for a in header["activations"]]
        dtype = check_dtype(header["dtype"])
        straight_through = header.get("straight_through", False)
        if any(n < 1 for n in sizes):
            raise ValueError(f"every layer needs at least one neuron; got {sizes}")
        if len(sizes) < 2 or len(activations) != len(sizes) - 1:
            raise ValueError(f"{len(sizes)} layer sizes need {len(sizes) - 1} activations; got {len(activations)}")
        if not isinstance(straight_through, bool):
            raise ValueError(f"straight_through must be true or false; got {straight_through!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid model header: {exc}") from None
    # Check the arrays against the header before building anything, so a forged header cannot make us allocate.
    weights, biases = [], []
    for l in range(len(sizes) - 1):
        for name, out, shape in ((f"W{l}", weights, (sizes[l + 1], sizes[l])), (f"b{l}", biases, (sizes[l + 1],))):
            arr = arrays.get(name)
            if arr is None or arr.shape != shape or arr.dtype != dtype:
                got = "missing" if arr is None else f"{arr.dtype} {arr.shape}"
                raise ValueError(f"{path}: array {name} should be {dtype} {shape}; it is {got}")
            # W0 saved in the embedding layout (the transpose of a C-contiguous table) comes back in it.
            table = name == "W0" and arr.flags.f_contiguous
            out.append(arr.copy(order="F") if table else np.ascontiguousarray(arr).copy())
    try:
        hidden = activations[:-1]
        net = MLP(sizes, activation=hidden if hidden else "relu", output_activation=activations[-1],
                  dtype=dtype, init=header.get("init", "auto"), straight_through=straight_through)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid model header: {exc}") from None
    if _digest([a for pair in zip(weights, biases) for a in pair]) != header.get("sha256"):
        raise ValueError(f"{path}: the arrays do not match the checksum in the header (file corrupted or edited)")
    net.weights, net.biases = weights, biases
    return net
