"""Saving and loading networks (and text classifiers) without pickle.

File format (version 2): a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) holding

    header   uint8 array: UTF-8 JSON {"format": "pyfastnn.MLP", "format_version": 1 or 2, "pyfastnn_version",
             "layer_sizes", "activations", "dtype", "init", "straight_through", "sha256"}, optionally
             "classes" and "feature_names" (the network's ``classes_`` and ``feature_names_``), and in
             version 2 "text": {"featurizer", "params", "classes"} (a text classifier's featurizer and
             class names)
    W0..W{L-1}, b0..b{L-1}   the weights (N_l, N_{l-1}) and biases (N_l,) in the network's dtype; W0 of a
             network in the embedding layout is stored in Fortran order (the .npy header says so) and
             loads in that layout
    vocab_offsets, vocab_utf8   (version 2, a BagOfWords featurizer) the vocabulary: term i is the UTF-8 bytes
             vocab_utf8[vocab_offsets[i]:vocab_offsets[i + 1]] (int64 (N_0 + 1,) and uint8 arrays)

A file is written as version 1 unless it needs version 2 (a text classifier), so plain networks stay readable
by older pyfastnn. The optional keys need no new version: a reader that does not know them ignores them and
loads the same network, which then cannot name its labels. ``sha256`` is the hex digest of the raw bytes of
W0, b0, W1, b1, ..., then of the vocabulary arrays, in that order: a file whose arrays were changed or
damaged fails to load. Only those members are read, as plain .npy arrays of the recorded dtype (never pickled
objects, so a file cannot run code), and only after their headers and sizes agree with the model header.
"""

import contextlib
import hashlib
import json
import math
import numbers
import os
import secrets
import stat
import tokenize
import zipfile
import zlib

import numpy as np

FORMAT = "pyfastnn.MLP"
FORMAT_VERSION = 2  # the newest version this reads
_TEXT_ARRAYS = ("vocab_offsets", "vocab_utf8")

_MAX_HEADER_BYTES = 1 << 20  # the JSON header takes a few hundred bytes
_DEFLATE_RATIO = 1100  # deflate expands at most ~1032 times
_CHUNK = 1 << 24  # arrays are read 16 MiB at a time
# What reading a damaged .npz raises, in zipfile (BadZipFile for a bad checksum or directory,
# NotImplementedError for a zip version or compression method it does not know, RuntimeError for a member
# flagged as encrypted), zlib and NumPy's .npy reader (SyntaxError or tokenize's TokenError for a garbled .npy
# header): a file that is not a valid archive, reported as ValueError (pyfastnn.datasets reads .npz data files
# so too).
ZIP_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
              SyntaxError, tokenize.TokenError)


def _digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _interleaved(net):
    return [a for pair in zip(net.weights, net.biases) for a in pair]


def _names(values, count, what, numeric):
    """``values`` as the list a header records: ``count`` strings, or when ``numeric`` ``count`` distinct
    strings or finite numbers (not a mix). Raises TypeError or ValueError naming ``what``."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or getattr(values, "ndim", 1) != 1:
        raise TypeError(f"{what} must be a sequence of {count} {'labels' if numeric else 'names'}; got "
                        f"{type(values).__name__}")
    items = [v.item() if isinstance(v, np.generic) else v for v in values]
    if len(items) != count:
        raise ValueError(f"{what} must hold {count} entries (one per {'class' if numeric else 'input'}); "
                         f"got {len(items)}")
    kinds = ["string" if isinstance(v, str) else
             "number" if numeric and isinstance(v, numbers.Real) and math.isfinite(v) else None
             for v in items]
    if set(kinds) not in ({"string"}, {"number"}):
        odd = [v for v, k in zip(items, kinds) if k is None]
        got = f"{odd[0]!r}" if odd else "a mix of strings and numbers"
        wanted = "all strings or all finite numbers" if numeric else "strings"
        raise TypeError(f"{what} must be {wanted}; got {got}")
    if numeric and len(set(items)) != count:
        raise ValueError(f"{what} must be distinct; got {items}")
    return items


def _n_classes(net):
    """How many labels predict_labels gives: one per output, or 2 for a single thresholded output."""
    return max(net.layer_sizes[-1], 2)


def _create_temporary(folder):
    """A new file ``.pyfastnn-*.tmp`` in ``folder``, open for writing: (fd, path). Created as open() creates
    files, so the kernel gives it mode 0666 less the umask (tempfile.mkstemp would force 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".pyfastnn-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {folder}: 100 random names were taken")


def save(net, path, text=None):
    """Write ``net`` to ``path`` (the name is used as given; ``.npz`` is not appended). Atomic: a crash mid-write
    leaves any earlier file intact. The file gets mode 0666 less the umask, as open() would give it.
    ``net.classes_`` and ``net.feature_names_`` are recorded when set. ``text``: (description, arrays) of a
    text classifier's featurizer (:meth:`pyfastnn.text.TextClassifier.save` passes it)."""
    from . import __version__

    net._check_parameters()
    labels = {}
    if net.classes_ is not None:
        labels["classes"] = _names(net.classes_, _n_classes(net), "net.classes_", numeric=True)
    if net.feature_names_ is not None:
        labels["feature_names"] = _names(net.feature_names_, net.layer_sizes[0], "net.feature_names_", False)
    extra = {} if text is None else {k: text[1][k] for k in _TEXT_ARRAYS if k in text[1]}
    header = {
        "format": FORMAT,
        "format_version": 1 if text is None else 2,
        "pyfastnn_version": __version__,
        "layer_sizes": net.layer_sizes,
        "activations": net.activations,
        "dtype": net.dtype.name,
        "init": net.init,
        "straight_through": net.straight_through,
        "sha256": _digest(_interleaved(net) + list(extra.values())),
        **labels,
    }
    if text is not None:
        header["text"] = text[0]
    encoded = json.dumps(header).encode("utf-8")
    if len(encoded) > _MAX_HEADER_BYTES:
        raise ValueError(f"the model header would take {len(encoded):,} bytes, more than load reads "
                         f"({_MAX_HEADER_BYTES:,}); set net.feature_names_ = None or use shorter names")
    arrays = {"header": np.frombuffer(encoded, dtype=np.uint8)}
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"W{l}"] = w
        arrays[f"b{l}"] = b
    arrays.update(extra)
    _write_atomically(_check_path(path), arrays)


def _write_atomically(path, arrays, durable=False):
    """Write ``arrays`` (dict name → array) as an .npz archive to ``path``: into a new file next to it,
    renamed over ``path`` once complete, so a crash mid-write leaves any earlier file intact. ``durable``: the
    data and the rename are also flushed to the disk (fsync) before returning, so that they survive a power
    loss or a kernel crash too."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create_temporary(folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    if durable and hasattr(os, "O_DIRECTORY"):  # the rename lives in the folder's entry (POSIX)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _check_path(path):
    """A model path as str: str, bytes or os.PathLike."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str, bytes or os.PathLike file path; got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise ValueError("path must be a file path; got an empty string")
    return path


def _open_array(archive, path, name, shape, dtype, limit=None, kind="pyfastnn model file"):
    """Member ``name``.npy of ``archive``, open at its data, after checking, from the member's .npy header
    and its size in the zip directory alone, that it holds exactly an array of ``dtype`` and ``shape`` (a
    1-D shape of any length when shape is None, of at most ``limit`` bytes). ``kind`` names the file in
    messages.

    Returns (file, shape, fortran_order)."""
    where = f"{path}: array {name} should be {dtype} {'(n,)' if shape is None else shape}"
    try:
        info = archive.getinfo(name + ".npy")
    except KeyError:
        raise ValueError(f"{where}; it is missing") from None
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(f"{path} is not a {kind} (member {name} uses compression {info.compress_type})")
    # Deflate expands data at most ~1032 times (stored data not at all): a member declaring more is forged.
    most = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_RATIO)
    if info.file_size > most:
        raise ValueError(f"{path} is not a {kind} (member {name} declares "
                         f"{info.file_size} bytes but holds {info.compress_size} compressed bytes)")
    member = None
    try:
        member = archive.open(info)
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version} (pyfastnn reads 1.0 and 2.0)")
        if version == (1, 0):
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(member)
        else:
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_2_0(member)
    except ZIP_ERRORS as exc:
        if member is not None:
            member.close()
        raise ValueError(f"{path} is not a {kind} (member {name}: {exc})") from None
    size = math.prod(got_shape) * got_dtype.itemsize
    held = info.file_size - member.tell()
    problem = None
    if got_dtype != dtype or (len(got_shape) != 1 if shape is None else got_shape != shape):
        problem = f"{where}; it is {got_dtype} {got_shape}"
    elif size != held:
        problem = f"{where}; its header declares {size} bytes of data but the member holds {held}"
    elif limit is not None and size > limit:
        problem = f"{where} of at most {limit} bytes; it declares {size}"
    if problem is not None:
        member.close()
        raise ValueError(problem)
    return member, got_shape, fortran


def _read_into(member, out, path, name, kind="pyfastnn model file"):
    """Fill ``out`` (C-contiguous) from ``member`` in chunks, so no second copy of a large array is made."""
    view = memoryview(out).cast("B")
    done = 0
    try:
        while done < len(view):
            n = member.readinto(view[done : done + _CHUNK])
            if not n:
                raise ValueError(f"the data ends after {done} of {len(view)} bytes")
            done += n
    except ZIP_ERRORS as exc:
        raise ValueError(f"{path} is not a {kind} (member {name}: {exc})") from None
    finally:
        member.close()


def load(path):
    """Read a network written by :func:`save`: a :class:`pyfastnn.MLP`, or for a file written by
    :meth:`pyfastnn.text.TextClassifier.save` (``pyfastnn train --text``) a TextClassifier.

    Only the members the format names are read: the header first, then each array's .npy header, checked
    against the model header and against the member's size before any array is allocated. Other members
    are ignored without being read.

    Raises
    ------
    FileNotFoundError
        No such file.
    IsADirectoryError, PermissionError
        A directory, or a file this process may not read.
    ValueError
        A file that is not a model written by save (not a regular file, not a zip archive, members missing,
        of the wrong shape or dtype, or declaring more data than they hold), a file written by a newer format
        version, or arrays that do not match their recorded checksum.
    """
    from .network import MLP, check_dtype

    with _open_archive(path, "pyfastnn model file") as (archive, path):
        return _load_archive(archive, path, MLP, check_dtype)


@contextlib.contextmanager
def _open_archive(path, kind):
    """``with _open_archive(path, kind) as (archive, path)``: the .npz at ``path`` (str, bytes or PathLike)
    open as a ZipFile, ``path`` as a str. FileNotFoundError, IsADirectoryError and PermissionError name the
    file; anything that is not a regular file or not a zip archive is a ValueError naming ``kind``."""
    path = _check_path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such {kind}: {path}") from None
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(f"{path} is a directory, not a {kind}")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path} is not a regular file (a device, pipe or socket), so not a {kind}")
    try:
        f = open(path, "rb")
    except PermissionError:
        raise PermissionError(f"cannot read the {kind} {path}: permission denied") from None
    with f:
        try:
            archive = zipfile.ZipFile(f)
        except ZIP_ERRORS as exc:
            raise ValueError(f"{path} is not a {kind} (not a .npz archive: {exc})") from None
        with archive:
            yield archive, path


def _read_header(archive, path, kind, fmt):
    """The JSON object in member ``header`` of ``archive``, checked to have "format" ``fmt``."""
    if "header.npy" not in archive.namelist():
        found = sorted(n.removesuffix(".npy") for n in archive.namelist())
        raise ValueError(f"{path} is not a {kind} (no header; arrays found: {found})")
    member, (length,), _ = _open_array(archive, path, "header", None, np.dtype(np.uint8), _MAX_HEADER_BYTES,
                                       kind)
    raw = np.empty(length, dtype=np.uint8)
    _read_into(member, raw, path, "header", kind)  # a damaged member (bad checksum) is a ValueError there
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a {kind} (unreadable header: {exc})") from None
    if header.get("format") != fmt:
        raise ValueError(f"{path} is not a {kind} (format {header.get('format')!r})")
    return header


def _load_archive(archive, path, MLP, check_dtype):
    header = _read_header(archive, path, "pyfastnn model file", FORMAT)
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
    # Every array's .npy header is checked against the model header, and its size against its member's, before
    # anything is allocated: a forged file cannot make us allocate more than its members hold.
    members = []
    try:
        for l in range(len(sizes) - 1):
            for name, shape in ((f"W{l}", (sizes[l + 1], sizes[l])), (f"b{l}", (sizes[l + 1],))):
                members.append((name, *_open_array(archive, path, name, shape, dtype)))
        try:
            hidden = activations[:-1]
            net = MLP(sizes, activation=hidden if hidden else "relu", output_activation=activations[-1],
                      dtype=dtype, init=header.get("init", "auto"), straight_through=straight_through)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: invalid model header: {exc}") from None
        for (name, member, shape, fortran), target in zip(members, _interleaved(net)):
            if fortran:  # column-major data is the row-major data of the transpose
                buffer = np.empty(shape[::-1], dtype=dtype)
                _read_into(member, buffer, path, name)
                if name == "W0":
                    net.weights[0] = buffer.T  # a network saved in the embedding layout comes back in it
                else:
                    np.copyto(target, buffer.T)
            else:
                _read_into(member, target, path, name)
    finally:
        for _, member, _, _ in members:
            member.close()
    text = header.get("text") if version >= 2 else None
    extra = _read_text_arrays(archive, path, text)
    if _digest(_interleaved(net) + list(extra.values())) != header.get("sha256"):
        raise ValueError(f"{path}: the arrays do not match the checksum in the header (file corrupted or edited)")
    try:
        if header.get("classes") is not None:
            net.classes_ = np.asarray(_names(header["classes"], _n_classes(net), "classes", numeric=True))
        if header.get("feature_names") is not None:
            net.feature_names_ = np.asarray(_names(header["feature_names"], sizes[0], "feature_names", False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid model header: {exc}") from None
    if text is None:
        return net
    from .text._model import from_saved

    return from_saved(text, net, extra, path)


def _read_text_arrays(archive, path, text):
    """The vocabulary arrays of a text model (none for a network, or a featurizer without a vocabulary)."""
    if text is None or not isinstance(text, dict) or text.get("featurizer") != "BagOfWords":
        return {}
    arrays = {}
    for name, dtype in zip(_TEXT_ARRAYS, (np.dtype(np.int64), np.dtype(np.uint8))):
        member, shape, _ = _open_array(archive, path, name, None, dtype)
        arrays[name] = np.empty(shape, dtype=dtype)
        _read_into(member, arrays[name], path, name)
    return arrays
