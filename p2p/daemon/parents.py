"""HTTP calls to a parent's upload server: its piece list (long-polled) and piece bytes."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from p2p.errors import P2PError
from p2p.proto.values import Code, ParentInfo
from p2p.types import PieceInfo, TaskID

POLL_WAIT_S = 5.0
READ_CHUNK = 1024 * 1024


class ParentError(P2PError):
    """A parent failed to answer; `code` is what the scheduler is told."""

    def __init__(self, message: str, code: Code, *, busy: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.busy = busy  # the parent is fine but has no free upload slot: try again, do not block it


@dataclass(frozen=True)
class PieceTable:
    pieces: list[PieceInfo]
    done: bool
    piece_size: int
    content_length: int


class ParentClient:
    def __init__(self, session: aiohttp.ClientSession, *, piece_timeout_s: float = 30.0) -> None:
        self._session = session
        self._piece_timeout = aiohttp.ClientTimeout(total=piece_timeout_s, sock_connect=2.0)

    async def piece_table(self, parent: ParentInfo, task_id: TaskID, have: int) -> PieceTable:
        """The parent's pieces; waits up to POLL_WAIT_S for more than `have` of them."""
        url = f"http://{parent.address}/tasks/{task_id}/pieces"
        params = {"have": str(have), "wait_s": str(POLL_WAIT_S)}
        timeout = aiohttp.ClientTimeout(total=POLL_WAIT_S + 10, sock_connect=2.0)
        try:
            async with self._session.get(url, params=params, timeout=timeout) as resp:
                if resp.status == 404:
                    raise ParentError(f"parent {parent.peer_id} has no task {task_id}", Code.PIECE_NOT_FOUND)
                if resp.status != 200:
                    raise ParentError(f"parent piece list answered {resp.status}", Code.PIECE_REQUEST_FAIL)
                body = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ParentError(f"parent {parent.address} unreachable: {exc!r}", Code.CONNECTION_ERROR) from exc
        pieces = [
            PieceInfo(number=p["number"], offset=p["offset"], size=p["size"], digest=p["digest"])
            for p in body["pieces"]
        ]
        return PieceTable(
            pieces=pieces,
            done=bool(body["done"]),
            piece_size=int(body["piece_size"]),
            content_length=int(body["content_length"]),
        )

    async def fetch_piece(self, parent: ParentInfo, task_id: TaskID, piece: PieceInfo) -> bytearray:
        """Exactly the piece's bytes (not yet verified: the caller checks the digest)."""
        url = f"http://{parent.address}/download/{task_id[:3]}/{task_id}"
        headers = {"Range": f"bytes={piece.offset}-{piece.offset + piece.size - 1}"}
        buf = bytearray(piece.size)
        try:
            async with self._session.get(
                url, params={"peerId": parent.peer_id}, headers=headers, timeout=self._piece_timeout
            ) as resp:
                if resp.status == 404:
                    # The piece was dropped (failed verification) or the task is going away.
                    raise ParentError(f"parent lacks piece {piece.number}", Code.PIECE_DOWNLOAD_FAIL)
                if resp.status == 503:
                    raise ParentError("parent has no free upload slot", Code.PIECE_REQUEST_FAIL, busy=True)
                if resp.status not in (200, 206):
                    raise ParentError(f"parent answered {resp.status}", Code.PIECE_DOWNLOAD_FAIL)
                pos = 0
                async for chunk in resp.content.iter_chunked(READ_CHUNK):
                    end = pos + len(chunk)
                    if end > piece.size:
                        raise ParentError("parent sent too many bytes", Code.PIECE_DOWNLOAD_FAIL)
                    buf[pos:end] = chunk
                    pos = end
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ParentError(f"parent {parent.address} failed: {exc!r}", Code.CONNECTION_ERROR) from exc
        if pos != piece.size:
            raise ParentError(f"short piece from parent: {pos} of {piece.size}", Code.PIECE_DOWNLOAD_FAIL)
        return buf
