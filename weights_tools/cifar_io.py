"""Read CIFAR-10 binary records (numpy only; used by the golden dumpers).

Record layout: <1 byte label><1024 R><1024 G><1024 B>, 3073 bytes, no header
(shared/data/README.md §1). Records 0-999 of shared/data/cifar10/test_batch.bin
are bit-exact; data/cifar10_test_0-999.bin in the repo is exactly those.
"""

import os

import numpy as np

RECORD_BYTES = 3073


def read_cifar_bin(path, start=0, count=None):
    """Return (images uint8 (N,3,32,32) RGB planar, labels int64 (N,))."""
    size = os.path.getsize(path)
    if size % RECORD_BYTES:
        raise ValueError(f"{path}: size {size} is not a multiple of {RECORD_BYTES}")
    total = size // RECORD_BYTES
    if count is None:
        count = total - start
    if start < 0 or count < 0 or start + count > total:
        raise ValueError(f"{path}: records [{start}, {start + count}) out of range (file has {total})")
    with open(path, "rb") as f:
        f.seek(start * RECORD_BYTES)
        raw = np.frombuffer(f.read(count * RECORD_BYTES), dtype=np.uint8).reshape(count, RECORD_BYTES)
    labels = raw[:, 0].astype(np.int64)
    images = raw[:, 1:].reshape(count, 3, 32, 32).copy()
    return images, labels
