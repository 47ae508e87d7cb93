"""TFRecord framing without TensorFlow, so that worker processes can write shards cheaply.

A TFRecord file is a sequence of records, each framed as

    uint64 length (little endian) | uint32 masked CRC-32C of the length | data | uint32 masked CRC-32C of the data

(tensorflow/core/lib/io/record_writer.h). Frames concatenate: the bytes of two record files
joined are a valid record file, which is how per-block parts are merged into shards.

`iter_records` and `check_file` read the framing back and verify both CRCs, naming the file, the
record and its byte offset when something is wrong: TensorFlow's own reader says only
"corrupted record at 795", without the file, which inside an interleave of many files is no help.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator

import google_crc32c

from input_pipeline import remote_files

# Each frame adds 8 + 4 bytes before and 4 bytes after the record.
FRAME_OVERHEAD = 16
_HEADER_SIZE = 12
# A record's data is read at most this much at a time, so that a damaged length field whose CRC
# happens to match cannot make us allocate an absurd buffer before finding the end of the file.
_MAX_READ = 1 << 26

RECREATE_ADVICE = ("recreate the shard with `bert-jax create-data`, or move it out of the "
                   "shard files")


class CorruptShardError(ValueError):
    """A shard file that cannot be read as pretraining data: damaged framing, a record that is not
    a pretraining example of the expected shapes, or token ids outside the model's vocab.

    `path` is the file, `record` the 0-based index of the bad record and `offset` its byte offset
    in the file (None where unknown), `problem` what is wrong.
    """

    def __init__(self, path: str, problem: str, *, record: int | None = None,
                 offset: int | None = None, advice: str = RECREATE_ADVICE):
        self.path, self.problem, self.record, self.offset = path, problem, record, offset
        self.advice = advice
        where = path
        if record is not None:
            where += f", record {record}"
        if offset is not None:
            where += f" (byte offset {offset})"
        super().__init__(f"corrupt shard {where}: {problem}; {advice}.")

    def __reduce__(self):  # Pickles with the keyword arguments too (ValueError's keeps `args`).
        return _rebuild_error, (self.path, self.problem, self.record, self.offset, self.advice)


def _rebuild_error(path: str, problem: str, record: int | None, offset: int | None,
                   advice: str) -> CorruptShardError:
    return CorruptShardError(path, problem, record=record, offset=offset, advice=advice)


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


def _read_up_to(f, size: int) -> bytes:
    """`size` bytes from `f`, or fewer where the file ends first."""
    if size <= _MAX_READ:
        return f.read(size)
    pieces, left = [], size
    while left:
        piece = f.read(min(left, _MAX_READ))
        if not piece:
            break
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)


def read_frames(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """(byte offset, data) of every record of the TFRecord file `path`, both CRCs verified.

    Raises `CorruptShardError` naming the file, the record index and its offset at the first
    damaged length or data, or where the file ends inside a record. (TensorFlow's reader takes a
    file that ends inside a record's 12-byte header for a complete one and drops that record;
    here it is a truncated file.)
    """
    path = os.fspath(path)
    offset = index = 0
    with remote_files.open_file(path, "rb") as f:
        while True:
            header = f.read(_HEADER_SIZE)
            if not header:
                return
            if len(header) < _HEADER_SIZE:
                raise CorruptShardError(
                    path, f"truncated record: the file ends {len(header)} bytes into the record's "
                    f"{_HEADER_SIZE}-byte header (an interrupted write or copy?)",
                    record=index, offset=offset)
            length_bytes, (length_crc,) = header[:8], struct.unpack("<I", header[8:])
            if _masked_crc32c(length_bytes) != length_crc:
                raise CorruptShardError(
                    path, "bad length CRC: the record's 8-byte length field is damaged, or this "
                    "is not a TFRecord file", record=index, offset=offset)
            (length,) = struct.unpack("<Q", length_bytes)
            body = _read_up_to(f, length + 4)
            if len(body) < length + 4:
                raise CorruptShardError(
                    path, f"truncated record: its header announces {length} bytes of data and a "
                    f"4-byte CRC, but the file ends {len(body)} bytes into those {length + 4} (an "
                    "interrupted write or copy?)", record=index, offset=offset)
            data, (data_crc,) = body[:length], struct.unpack("<I", body[length:])
            if _masked_crc32c(data) != data_crc:
                raise CorruptShardError(path, f"bad data CRC: the record's {length} bytes of data "
                                        "are damaged", record=index, offset=offset)
            yield offset, data
            offset += length + FRAME_OVERHEAD
            index += 1


def iter_records(path: str | os.PathLike) -> Iterator[bytes]:
    """The records of the TFRecord file `path`, verified as `read_frames` verifies them."""
    for _, data in read_frames(path):
        yield data


def check_file(path: str | os.PathLike) -> int:
    """The number of records in the TFRecord file `path`; raises `CorruptShardError` (file,
    record index, byte offset, what is wrong) if its framing is damaged or truncated."""
    count = 0
    for _ in read_frames(path):
        count += 1
    return count
