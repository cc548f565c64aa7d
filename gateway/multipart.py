"""Multipart upload staging on local disk.

Layout: `<root>/<upload_id>/upload.json` (bucket, key, options, initiated), per part a data file
`<n>.<uniq>.data` and an index `<n>.json` naming the data file, its MD5 and size. An upload of a
part writes its own data file and then atomically replaces the index, so two uploads of the same
part may overlap without a lock: the last one to finish wins. Completion concatenates the chosen
parts with copy_file_range (the kernel moves the bytes) into one file for the object service.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from dfstore.errors import BadDigest, EntityTooSmall, InvalidArgument, InvalidPart, InvalidPartOrder, NoSuchUpload
from dfstore.models import PutOptions
from gateway.xml import PartEntry, UploadEntry
from p2p.types import FileRegion

MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PART_NUMBER = 10000
COPY_BYTES = 8 * 1024 * 1024
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: datetime
    options: PutOptions


@dataclass(frozen=True)
class Assembled:
    path: Path
    etag: str  # md5 of the part md5s, "-N"
    size: int
    part_sizes: list[int]


def check_part_number(raw: str | None) -> int:
    if raw is None or not raw.isdigit() or not 1 <= int(raw) <= MAX_PART_NUMBER:
        raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive")
    return int(raw)


class MultipartStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def _dir(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise NoSuchUpload("The specified upload does not exist.")
        return self._root / upload_id

    async def create(self, bucket: str, key: str, options: PutOptions) -> Upload:
        upload = Upload(uuid.uuid4().hex, bucket, key, datetime.now(UTC), options)
        record = {
            "bucket": bucket,
            "key": key,
            "initiated": upload.initiated.isoformat(),
            "options": asdict(options),
        }
        await asyncio.to_thread(_create_dir, self._dir(upload.upload_id), record)
        return upload

    async def get(self, bucket: str, key: str, upload_id: str) -> Upload:
        path = self._dir(upload_id) / "upload.json"
        try:
            record = json.loads(await asyncio.to_thread(path.read_bytes))
        except (OSError, ValueError):
            raise NoSuchUpload("The specified upload does not exist.", bucket=bucket, key=key) from None
        if record["bucket"] != bucket or record["key"] != key:
            raise NoSuchUpload("The specified upload does not exist.", bucket=bucket, key=key)
        return _upload(upload_id, record)

    async def write_part(
        self, upload: Upload, number: int, chunks: AsyncIterator[bytes], *, content_md5: str | None = None
    ) -> PartEntry:
        """Stream a part to its own file; BadDigest if Content-MD5 (hex) does not match."""
        folder = self._dir(upload.upload_id)
        data_path = folder / f"{number}.{uuid.uuid4().hex}.data"
        md5 = hashlib.md5()
        try:
            fd = await asyncio.to_thread(os.open, data_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:
            raise NoSuchUpload("The specified upload does not exist.") from None
        size = 0
        try:
            try:
                async for piece in chunks:
                    await asyncio.to_thread(_write_hashed, fd, piece, md5)
                    size += len(piece)
            finally:
                await asyncio.to_thread(os.close, fd)
            etag = md5.hexdigest()
            if content_md5 is not None and content_md5 != etag:
                raise BadDigest("The Content-MD5 you specified did not match what we received.")
            return await self._commit_part(folder, number, data_path, etag, size)
        except BaseException:
            await asyncio.to_thread(_unlink, data_path)
            raise

    async def copy_part(self, upload: Upload, number: int, regions: AsyncIterator[FileRegion]) -> PartEntry:
        """UploadPartCopy: the bytes come from verified regions of the local cache."""
        folder = self._dir(upload.upload_id)
        data_path = folder / f"{number}.{uuid.uuid4().hex}.data"
        md5 = hashlib.md5()
        size = 0
        try:
            fd = await asyncio.to_thread(os.open, data_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:
            raise NoSuchUpload("The specified upload does not exist.") from None
        try:
            try:
                async for region in regions:
                    await asyncio.to_thread(_copy_region_hashed, region, fd, md5)
                    size += region.length
            finally:
                await asyncio.to_thread(os.close, fd)
            return await self._commit_part(folder, number, data_path, md5.hexdigest(), size)
        except BaseException:
            await asyncio.to_thread(_unlink, data_path)
            raise

    async def _commit_part(self, folder: Path, number: int, data_path: Path, etag: str, size: int) -> PartEntry:
        now = datetime.now(UTC)
        index = {"file": data_path.name, "etag": etag, "size": size, "modified": now.isoformat()}
        replaced = await asyncio.to_thread(_replace_index, folder, number, index)
        if replaced and replaced != data_path.name:
            await asyncio.to_thread(_unlink, folder / replaced)
        return PartEntry(number, etag, size, now)

    async def parts(self, upload: Upload) -> list[PartEntry]:
        records = await asyncio.to_thread(_read_indexes, self._dir(upload.upload_id))
        return [
            PartEntry(n, r["etag"], r["size"], datetime.fromisoformat(r["modified"]))
            for n, r in sorted(records.items())
        ]

    async def assemble(self, upload: Upload, chosen: Sequence[tuple[int, str]]) -> Assembled:
        """Check the client's part list and concatenate the parts into one file in the upload dir."""
        folder = self._dir(upload.upload_id)
        records = await asyncio.to_thread(_read_indexes, folder)
        numbers = [n for n, _ in chosen]
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise InvalidPartOrder("The list of parts was not in ascending order.")
        files = []
        sizes = []
        md5s = b""
        for i, (number, etag) in enumerate(chosen):
            record = records.get(number)
            if record is None or record["etag"] != etag:
                raise InvalidPart(
                    "One or more of the specified parts could not be found or its ETag did not match.",
                    bucket=upload.bucket,
                    key=upload.key,
                )
            if i < len(chosen) - 1 and record["size"] < MIN_PART_BYTES:
                raise EntityTooSmall("Your proposed upload is smaller than the minimum allowed object size.")
            files.append(folder / record["file"])
            sizes.append(record["size"])
            md5s += bytes.fromhex(etag)
        out = folder / f"object.{uuid.uuid4().hex}"
        size = await asyncio.to_thread(_concatenate, files, out)
        return Assembled(out, f"{hashlib.md5(md5s).hexdigest()}-{len(chosen)}", size, sizes)

    async def abort(self, upload_id: str) -> None:
        folder = self._dir(upload_id)
        if not await asyncio.to_thread(folder.is_dir):
            raise NoSuchUpload("The specified upload does not exist.")
        await asyncio.to_thread(shutil.rmtree, folder, True)

    async def purge(self, older_than: datetime) -> int:
        """Remove uploads initiated before `older_than` (abandoned by their clients). Returns how many."""
        stale = [uid for uid, r in await asyncio.to_thread(_scan_uploads, self._root)
                 if datetime.fromisoformat(r["initiated"]) < older_than]
        for upload_id in stale:
            await asyncio.to_thread(shutil.rmtree, self._root / upload_id, True)
        return len(stale)

    async def uploads(self, bucket: str, prefix: str = "") -> list[UploadEntry]:
        found = await asyncio.to_thread(_scan_uploads, self._root)
        return sorted(
            (
                UploadEntry(r["key"], uid, datetime.fromisoformat(r["initiated"]))
                for uid, r in found
                if r["bucket"] == bucket and r["key"].startswith(prefix)
            ),
            key=lambda u: (u.key, u.initiated),
        )


def _upload(upload_id: str, record: dict) -> Upload:
    return Upload(
        upload_id,
        record["bucket"],
        record["key"],
        datetime.fromisoformat(record["initiated"]),
        PutOptions(**record["options"]),
    )


def _create_dir(folder: Path, record: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "upload.json").write_text(json.dumps(record))


def _write_hashed(fd: int, piece: bytes, md5: hashlib._Hash) -> None:
    md5.update(piece)
    view = memoryview(piece)
    while view:
        view = view[os.write(fd, view):]


def _copy_region_hashed(region: FileRegion, fd: int, md5: hashlib._Hash) -> None:
    with open(region.path, "rb") as src:
        src.seek(region.offset)
        remaining = region.length
        while remaining:
            block = src.read(min(remaining, COPY_BYTES))
            if not block:
                raise OSError(f"cached file {region.path} is shorter than expected")
            _write_hashed(fd, block, md5)
            remaining -= len(block)


def _replace_index(folder: Path, number: int, index: dict) -> str:
    """Atomically point part `number` at a new data file; returns the data file it pointed at before."""
    target = folder / f"{number}.json"
    previous = ""
    try:
        previous = json.loads(target.read_bytes())["file"]
    except (OSError, ValueError, KeyError):
        pass
    tmp = folder / f".{number}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(json.dumps(index))
        os.replace(tmp, target)
    except FileNotFoundError:
        raise NoSuchUpload("The specified upload does not exist.") from None
    return previous


def _read_indexes(folder: Path) -> dict[int, dict]:
    if not folder.is_dir():
        raise NoSuchUpload("The specified upload does not exist.")
    records = {}
    for path in folder.glob("*.json"):
        if path.stem.isdigit():
            try:
                records[int(path.stem)] = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue  # replaced while we listed
    return records


def _concatenate(files: Sequence[Path], out: Path) -> int:
    total = 0
    with open(out, "wb") as dst:
        for path in files:
            with open(path, "rb") as src:
                remaining = os.fstat(src.fileno()).st_size
                offset = 0
                while remaining:
                    n = os.copy_file_range(src.fileno(), dst.fileno(), remaining, offset)
                    if n == 0:
                        break
                    offset += n
                    remaining -= n
                    total += n
    return total


def _scan_uploads(root: Path) -> list[tuple[str, dict]]:
    found: list[tuple[str, dict]] = []
    if not root.is_dir():
        return found
    for folder in root.iterdir():
        try:
            found.append((folder.name, json.loads((folder / "upload.json").read_bytes())))
        except (OSError, ValueError):
            continue
    return found


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
