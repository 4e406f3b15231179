"""A base for read-only, seekable raw streams that compute their bytes on demand."""

from __future__ import annotations

import io


class SeekableReader(io.RawIOBase):
    """Keeps the position over a stream of ``self._size`` bytes; subclasses implement
    ``readinto`` from ``self._position`` (and advance it)."""

    _size: int
    _position: int = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position
