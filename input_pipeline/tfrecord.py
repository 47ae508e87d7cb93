"""TFRecord framing without TensorFlow, so that worker processes can write shards cheaply.

A TFRecord file is a sequence of records, each framed as

    uint64 length (little endian) | uint32 masked CRC-32C of the length | data | uint32 masked CRC-32C of the data

(tensorflow/core/lib/io/record_writer.h). Frames concatenate: the bytes of two record files
joined are a valid record file, which is how per-block parts are merged into shards.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

import google_crc32c

from input_pipeline import remote_files

# Each frame adds 8 + 4 bytes before and 4 bytes after the record.
FRAME_OVERHEAD = 16


def _masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """One record in TFRecord framing."""
    length = struct.pack("<Q", len(record))
    return b"".join((length, struct.pack("<I", _masked_crc32c(length)), record,
                     struct.pack("<I", _masked_crc32c(record))))


def write_atomically(path: str | os.PathLike, chunks: Iterable[bytes]) -> int:
    """Writes `chunks` to a temporary name beside `path`, then renames it to `path`, so that a
    crash or a full disk never leaves a partial file under the final name. Returns the size."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    size = 0
    try:
        with remote_files.open_file(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                size += len(chunk)
        remote_files.replace(tmp, path)
    except BaseException:
        if remote_files.exists(tmp):
            remote_files.remove(tmp)
        raise
    return size
