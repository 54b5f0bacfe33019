"""A large file to S3 as a multipart upload, several parts at once, in threads.

An asynchronous client signs and checksums every part on its one event-loop
thread, so the parts of one file take turns for the CPU. Here each part is
sent by its own thread through botocore's blocking client: hashing and
sending release the GIL, so parts overlap as they do in ``aws s3 cp``.

Each part streams from the file through a bounded reader (no part is held in
memory whole), with a CRC32 the server checks; the object's checksum is
composed of the parts' (no pass over the whole object at the end). Until the upload is completed
nothing is visible under the key; an upload that fails is aborted, so the
server drops the parts it holds.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

from wbtool.remote.pool import run_all

PART_SIZE = 8 << 20
THREADS = 8
#: Files this large or larger go in parts through :func:`upload`.
THRESHOLD = 2 * PART_SIZE


class _Part(io.RawIOBase):
    """Bytes ``start`` to ``start + size`` of a file, as a seekable file of their own."""

    def __init__(self, path: str, start: int, size: int) -> None:
        super().__init__()
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._start = start
        self._size = size
        self._pos = 0
        self._file.seek(start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:
        return self._size

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        got = self._file.readinto(view[:want]) or 0
        self._pos += got
        return got

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, min(base + offset, self._size))
        self._file.seek(self._start + self._pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._file.close()
        super().close()


def upload(client: Any, path: str, bucket: str, key: str, *, part_size: int = PART_SIZE,
           threads: int = THREADS) -> None:
    """Upload the file at ``path`` to ``bucket``/``key`` in parts of ``part_size``."""
    size = os.path.getsize(path)
    count = max(1, -(-size // part_size))
    # A CRC32 of each part, which the server checks and combines into the
    # object's checksum, as ``aws s3`` asks; unless the client is configured to
    # send checksums only where required (stores that lack them).
    checksum = {}
    if getattr(client.meta.config, "request_checksum_calculation", None) != "when_required":
        checksum = {"ChecksumAlgorithm": "CRC32"}
    created = client.create_multipart_upload(Bucket=bucket, Key=key, **checksum)
    upload_id = created["UploadId"]
    # Part checksums are named on completion where the upload has an algorithm.
    named = f"Checksum{created.get('ChecksumAlgorithm') or ''}"

    def send(number: int) -> dict[str, Any]:
        start = (number - 1) * part_size
        with _Part(path, start, min(part_size, size - start)) as body:
            answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id,
                                        PartNumber=number, Body=body, **checksum)
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        if named != "Checksum" and named in answer:
            part[named] = answer[named]
        return part

    def abort() -> None:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    # A stopped push waits for the abort run_all runs (see wbtool.remote.pool).
    parts = run_all(send, range(1, count + 1), threads, undo=abort)
    try:
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    except BaseException:
        with contextlib.suppress(Exception):
            abort()
        raise
