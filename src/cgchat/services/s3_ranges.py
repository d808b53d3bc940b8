"""A seekable, read-only file object over one S3 object, read with HTTP range requests.

FFmpeg (through PyAV) reads a video's index and then seeks to the keyframes it needs, so a
multi-gigabyte render or review movie is indexed by fetching a few megabytes instead of the whole
object: no full download, no local disk. Reads are pinned to the version (or ETag) that was
announced, so an object overwritten mid-read fails cleanly instead of mixing two files' bytes.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import Any

from cgchat.services.s3 import MISSING_CODES, error_code


class ObjectChanged(Exception):
    """The object was overwritten or deleted while being read (its own S3 event follows)."""


class S3RangeReader(io.RawIOBase):
    """Reads whole blocks (``block_size``) and keeps the last few, since demuxers re-read headers and
    step back a little after seeks; reads bigger than a block go straight through."""

    def __init__(self, client: Any, bucket: str, key: str, size: int, *, version_id: str | None = None,
                 etag: str | None = None, block_size: int = 1 << 20, cached_blocks: int = 8):
        super().__init__()
        self.client, self.bucket, self.key, self.size = client, bucket, key, size
        self.version_id, self.etag = version_id, etag
        self.block_size = block_size
        self._cached_blocks = cached_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._pos = 0
        self.bytes_fetched = 0
        self.requests = 0
        self.error: Exception | None = None  # the first failed read: demuxers turn it into "bad data"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"unsupported whence {whence}")
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self.size - self._pos)
        if want <= 0:
            return 0
        if want > self.block_size:
            data = self._fetch(self._pos, self._pos + want)
        else:
            data = self._from_blocks(self._pos, want)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _from_blocks(self, start: int, want: int) -> bytes:
        index = start // self.block_size
        offset = start - index * self.block_size
        block = self._block(index)
        data = block[offset : offset + want]
        if len(data) < want and offset + want > len(block) and (index + 1) * self.block_size < self.size:
            data += self._block(index + 1)[: want - len(data)]
        return data

    def _block(self, index: int) -> bytes:
        if index in self._blocks:
            self._blocks.move_to_end(index)
            return self._blocks[index]
        start = index * self.block_size
        data = self._fetch(start, min(start + self.block_size, self.size))
        self._blocks[index] = data
        if len(self._blocks) > self._cached_blocks:
            self._blocks.popitem(last=False)
        return data

    def _fetch(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the pinned version."""
        from botocore.exceptions import ClientError

        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key, "Range": f"bytes={start}-{end - 1}"}
        if self.version_id:
            args["VersionId"] = self.version_id
        elif self.etag:
            args["IfMatch"] = f'"{self.etag}"'
        try:
            data = self.client.get_object(**args)["Body"].read()
        except ClientError as exc:
            code = error_code(exc)
            if code in MISSING_CODES or code in ("PreconditionFailed", "412"):
                self.error = ObjectChanged(f"s3://{self.bucket}/{self.key} changed while it was read ({code})")
                raise self.error from exc
            self.error = self.error or exc
            raise
        except Exception as exc:  # connection reset, timeout: remembered for the caller to retry
            self.error = self.error or exc
            raise
        self.requests += 1
        self.bytes_fetched += len(data)
        return data
