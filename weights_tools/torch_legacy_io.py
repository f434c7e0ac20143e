"""Read a legacy (pre-1.6, non-zip) torch.save file without executing pickled code.

Why not torch.load: torch.load unpickles with the full pickle machinery (any
global may be called), and torch 1.13's weights_only=True loader rejects these
files (it does not know the BINFLOAT opcode used for `best_prec1`). This reader
allows only the handful of globals a state_dict needs and rebuilds tensors as
numpy arrays, so the converter does not depend on torch for .th files at all
(the golden dumpers do use torch.load, which keeps the two paths independent).

Legacy layout (see shared/data/README.md §2): a sequence of pickles
  1. magic number 0x1950a86a20f9469cfc6c
  2. protocol version 1001
  3. sys_info dict (little_endian, type sizes)
  4. the object; tensors are persistent ids
     ('storage', <StorageType>, key, location, numel, view_metadata)
     rebuilt by torch._utils._rebuild_tensor{,_v2}(storage, offset, size, stride, ...)
  5. the list of storage keys
then, for each key in that order: int64 element count + raw little-endian data.
"""

import collections
import pickle

import numpy as np

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class LegacyFormatError(Exception):
    pass


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    def __init__(self, key, dtype, numel):
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.data = None  # filled after the object pickle has been read


class _PendingTensor:
    """A tensor whose storage bytes come later in the file."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def materialize(self):
        st = self.storage
        if st.data is None:
            raise LegacyFormatError(f"storage {st.key} has no data in the file")
        if not self.size:
            return np.array(st.data[self.offset], dtype=st.dtype)
        # bounds check before as_strided (which would otherwise read out of bounds)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride) if n > 0)
        if self.offset < 0 or any(s < 0 for s in self.stride) or last >= st.numel:
            raise LegacyFormatError(f"tensor view (offset {self.offset}, size {self.size}, "
                                    f"stride {self.stride}) exceeds storage {st.key} of {st.numel}")
        it = st.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            st.data[self.offset:], shape=self.size, strides=[s * it for s in self.stride])
        return np.array(view, copy=True)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    if not isinstance(storage, _Storage):
        raise LegacyFormatError("tensor rebuilt from something that is not a storage")
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f, encoding="utf-8")
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        fn = _ALLOWED_GLOBALS.get((module, name))
        if fn is None:
            raise LegacyFormatError(f"refusing to unpickle global {module}.{name} "
                                    "(not part of a plain state_dict)")
        return fn

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise LegacyFormatError(f"unexpected persistent id {pid!r}")
        _, stype, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(stype, _StorageType):
            raise LegacyFormatError(f"persistent id with non-storage type {stype!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(key, stype.dtype, int(numel))
        st = self.storages[key]
        if view is not None:
            raise LegacyFormatError(f"storage views are not supported (storage {key})")
        return st


def _plain_load(f):
    # the header pickles hold only ints and dicts
    return _RestrictedUnpickler(f, {}).load()


def load(path):
    """Return the unpickled object with every tensor replaced by a numpy array."""
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if head == b"PK":
            raise LegacyFormatError(f"{path}: zip-format torch file, not the legacy format")
        try:
            magic = _plain_load(f)
        except Exception as e:
            raise LegacyFormatError(f"{path}: not a legacy torch.save file ({e})")
        if magic != MAGIC_NUMBER:
            raise LegacyFormatError(f"{path}: bad magic number {magic!r}")
        version = _plain_load(f)
        if version != PROTOCOL_VERSION:
            raise LegacyFormatError(f"{path}: unsupported protocol version {version!r}")
        sys_info = _plain_load(f)
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise LegacyFormatError(f"{path}: only little-endian files are supported ({sys_info!r})")
        storages = {}
        obj = _RestrictedUnpickler(f, storages).load()
        keys = _plain_load(f)
        if sorted(map(str, keys)) != sorted(map(str, storages)):
            raise LegacyFormatError(f"{path}: storage key list does not match the storages used")
        for key in keys:
            st = storages[key]
            raw = f.read(8)
            if len(raw) != 8:
                raise LegacyFormatError(f"{path}: truncated before storage {key}")
            n = int.from_bytes(raw, "little", signed=True)
            if n != st.numel:
                raise LegacyFormatError(f"{path}: storage {key} holds {n} elements, expected {st.numel}")
            nbytes = n * st.dtype.itemsize
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise LegacyFormatError(f"{path}: truncated inside storage {key}")
            st.data = np.frombuffer(data, dtype=st.dtype)
        trailing = f.read(1)
        if trailing:
            raise LegacyFormatError(f"{path}: unexpected bytes after the last storage")

    def convert(x):
        if isinstance(x, _PendingTensor):
            return x.materialize()
        if isinstance(x, collections.OrderedDict):
            return collections.OrderedDict((k, convert(v)) for k, v in x.items())
        if isinstance(x, dict):
            return {k: convert(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(convert(v) for v in x)
        return x

    return convert(obj)
