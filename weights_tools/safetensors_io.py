"""Minimal safetensors reader/writer (no PyPI dependency).

Layout written here (the standard safetensors format):
  8 bytes  little-endian u64 N = length of the JSON header
  N bytes  JSON header: {"__metadata__": {str: str}, name: {"dtype", "shape",
           "data_offsets": [begin, end]}, ...}, padded with spaces so that the
           data section starts at an 8-byte aligned offset
  rest     raw little-endian tensor data; tensors are stored in sorted-name
           order, offsets are relative to the start of the data section.

Only the dtypes veto needs are supported (F32 for weights; a few others for
reading other people's files).

Run with Debian's /usr/bin/python3 (numpy is the only requirement).
"""

import json
import os
import struct
import tempfile

import numpy as np

_DTYPES = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}


class SafetensorsError(Exception):
    pass


def encode(tensors, metadata=None):
    """Return the bytes of a safetensors file holding `tensors` (name -> ndarray)."""
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError(f"metadata must be str->str, got {k!r}: {type(v).__name__}")
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise SafetensorsError("a tensor may not be named __metadata__")
        arr = np.asarray(tensors[name])
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if dt not in _NAMES:
            raise SafetensorsError(f"tensor {name}: unsupported dtype {arr.dtype}")
        data = np.ascontiguousarray(arr, dtype=dt.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": _NAMES[dt],
            "shape": [int(d) for d in arr.shape],
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # pad so that 8 + len(header) is a multiple of 8 (data section 8-byte aligned)
    text += b" " * ((-len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write(path, tensors, metadata=None):
    """Write atomically: a temp file in the same folder, fsync, then rename."""
    blob = encode(tensors, metadata)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def decode(blob, where="<bytes>"):
    """Parse safetensors bytes -> (dict name -> ndarray, metadata dict)."""
    if len(blob) < 8:
        raise SafetensorsError(f"{where}: file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise SafetensorsError(f"{where}: header length {n} exceeds file size {len(blob)}")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{where}: bad JSON header: {e}")
    metadata = header.pop("__metadata__", {}) or {}
    data = memoryview(blob)[8 + n:]
    tensors = {}
    for name, info in header.items():
        if info.get("dtype") not in _DTYPES:
            raise SafetensorsError(f"{where}: tensor {name}: unsupported dtype {info.get('dtype')}")
        dt = _DTYPES[info["dtype"]]
        shape = tuple(int(d) for d in info["shape"])
        b, e = (int(x) for x in info["data_offsets"])
        count = int(np.prod(shape, dtype=np.int64))
        if not (0 <= b <= e <= len(data)) or e - b != count * dt.itemsize:
            raise SafetensorsError(
                f"{where}: tensor {name}: offsets [{b},{e}] do not fit shape {shape} {info['dtype']}"
                f" within a data section of {len(data)} bytes")
        tensors[name] = np.frombuffer(data[b:e], dtype=dt).reshape(shape).copy()
    return tensors, metadata


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    return decode(blob, where=path)
