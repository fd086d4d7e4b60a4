"""The array NSGA-II's generations as one append-only file (`parts/generations.dlog`, `layout.PART_LOG`): a record
per generation (its `.dcol` bytes, dse.runs.colpart), appended in place and flushed to disk by one fdatasync.

One file per run rather than one per generation: a new file costs an open, a rename and two fsyncs (the file's
and its folder's, ~5 + ~1.4 ms on this machine's ext4 disk, beside the next generation's work), an append to an
open file one write and one fdatasync (~2 ms), so that the run waits for the disk less; records appended one
right after the other (the generations of one model call) share one fdatasync (`PartStore`: at most the records
of one model call not yet on disk). Record layout:

  REC (8 bytes) | part index (8 bytes, little-endian) | payload size (8 bytes, little-endian) | payload

A payload of size 0 is a tombstone: the part is stored as a file again (a re-run generation the `.dcol` format
could not hold). The last record of the index wins. A crash (power loss) during an append leaves a torn last
record: it is not part of the log (a reader skips it, the next writer cuts it off), which loses at most the
records not yet synced; anything else that does not read as a record, followed by more bytes, is damage
(`PartLogError`: the reader says where to cut the log; e.g. of two records not yet synced, the first torn and the
second whole, if a disk wrote them out of order).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from dse.runs.colpart import END, MAGIC

__all__ = ["PartLog", "PartLogError", "fsync_dir"]

REC = b"DSEREC01"
_HEAD = struct.Struct("<8sQQ")  # marker, part index, payload size
_sync = getattr(os, "fdatasync", os.fsync)  # (macOS has no fdatasync)


def fsync_dir(path: Path) -> None:
    """Flush the folder `path`'s entries to disk (a new or renamed file in it); a folder that cannot be opened is
    left as it is."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartLogError(ValueError):
    """A damaged record followed by more bytes (not a torn last record): `offset` is where it starts."""

    def __init__(self, path: Path, offset: int, size: int):
        super().__init__(f"{path}: damaged record at byte {offset} of {size}")
        self.offset = offset


class PartLog:
    """One run's generation log: `scan` lists the whole records (following a writer that appends: each call reads
    what was added since the last), `read` one record's payload, `append` + `sync` write one (the writer: the one
    process that holds the run's lock)."""

    HEAD_SIZE = _HEAD.size  # bytes before a record's payload

    def __init__(self, path: Path):
        self.path = Path(path)
        self._index: dict[int, tuple[int, int]] = {}  # part -> (payload offset, payload size); size 0: tombstone
        self._scanned = 0  # bytes of whole records read so far
        self._fd: int | None = None
        self._created = False  # this writer created the file: its folder's entry is flushed with the next sync

    def scan(self) -> dict[int, tuple[int, int]]:
        """{part: (payload offset, size)} of the whole records (size 0: a tombstone)."""
        if self._fd is not None:  # the writer: it knows what it appended
            return self._index
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return self._index
        with f:
            size = os.fstat(f.fileno()).st_size
            if size < self._scanned:  # cut by a writer (a torn tail, then new records): read again
                self._index, self._scanned = {}, 0
            if size == self._scanned:
                return self._index
            f.seek(self._scanned)
            data = f.read(size - self._scanned)
        base, off = self._scanned, 0
        while len(data) - off >= _HEAD.size:
            mark, index, n = _HEAD.unpack_from(data, off)
            end = off + _HEAD.size + n
            if mark != REC:
                if not any(memoryview(data)[off:]):  # zeros to the end: a torn append (space taken, data not yet)
                    break
                raise PartLogError(self.path, base + off, base + len(data))
            if end > len(data):  # cut short: a torn append
                break
            if n and not (data.startswith(MAGIC, off + _HEAD.size) and data.endswith(END, 0, end)):
                if end == len(data):  # the last record, torn (its end zeroed)
                    break
                raise PartLogError(self.path, base + off, base + len(data))
            self._index[index] = (base + off + _HEAD.size, n)
            off = end
        self._scanned = base + off
        return self._index

    def read(self, index: int) -> bytes:
        """The payload of part `index`'s last record."""
        off, n = self.scan()[index]
        with open(self.path, "rb") as f:
            f.seek(off)
            return f.read(n)

    def append(self, index: int, payload: bytes) -> None:
        """Append part `index`'s record (in place when this returns: a killed process loses nothing of it; on disk
        after `sync`). A failed write (a full disk) is cut off again, so the log stays whole."""
        if self._fd is None:
            self._open()
        fd = self._fd
        assert fd is not None
        head = _HEAD.pack(REC, index, len(payload))
        try:
            done = os.writev(fd, [head, payload])
            total = len(head) + len(payload)
            while done < total:  # (a regular file writes it all at once but on a full disk)
                done += os.write(fd, (head + payload)[done:])
        except BaseException:
            try:
                os.ftruncate(fd, self._scanned)
            except OSError:
                pass
            raise
        self._index[index] = (self._scanned + len(head), len(payload))
        self._scanned += total

    def _open(self) -> None:
        """Open for appending: the whole records read, a torn last record cut off."""
        self.scan()
        self._created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if os.fstat(fd).st_size > self._scanned:
                os.ftruncate(fd, self._scanned)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def sync(self) -> None:
        """The records appended so far on disk (and the file's folder entry, when this writer created it)."""
        if self._fd is None:
            return
        _sync(self._fd)
        if self._created:
            self._created = False
            fsync_dir(self.path.parent)

    def close(self) -> None:
        """Stop appending (idempotent); `scan` then reads the file again."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
