"""The P2P downloader: one run of one task through the scheduler, plugged into the TaskManager seam.

A run registers the peer with the scheduler that owns the task (consistent hashing), opens the report
stream and follows its packets: parents to fetch pieces from, or an instruction to go to the origin.
It follows each parent's piece list while that parent is still downloading, fetches pieces from
several parents at once, checks every piece's xxh3 digest before it is stored (a lying parent is
blocked and reported, its bytes never reach a reader), and reports every piece and the result.

With no scheduler reachable, no packet within `schedule_timeout_s`, or a broken scheduler stream
before any parent was given, the run reads from the origin instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING

from p2p.daemon.dispatcher import Dispatcher, Job, Mode, ParentState
from p2p.daemon.parents import ParentError
from p2p.daemon.tasks import read_run, source_run_pieces
from p2p.daemon.taskstore import TaskStore
from p2p.errors import P2PError, PieceDigestMismatch, SchedulerUnavailable
from p2p.proto.values import (
    Code,
    PeerPacket,
    PeerResult,
    PieceReport,
    RegisterResult,
    Registration,
    ReportKind,
    SizeScope,
    TaskSpec,
)
from p2p.types import PeerID, PieceInfo, SourceStat

if TYPE_CHECKING:
    from p2p.clients.scheduler import ReportStream
    from p2p.daemon.p2p import P2PNode

log = logging.getLogger(__name__)

BUSY_BACKOFF_S = 0.05
DIGEST_RETRY_S = 5.0  # after a failed origin-digest request, before the next
FOLLOW_DRAIN_S = 2.0
# Fetches in flight from one parent. More only split that parent's upload link into slower flows:
# every piece then takes longer to arrive, and each hop of the pipeline behind the seed lags more.
# Two hide the gap between one piece's end and the next request.
PARENT_FETCHES = 2


class Conductor:
    """A `Downloader` (see p2p/daemon/tasks.py). One instance per download run."""

    def __init__(self, node: P2PNode, task: TaskStore, url: str, stat: SourceStat) -> None:
        self.node = node
        self.url = url
        self.stat = stat
        self.peer_id: PeerID = node.new_peer_id()
        self.source_bytes = 0
        self._stream: ReportStream | None = None
        self._syncers: dict[PeerID, asyncio.Task[None]] = {}
        self._dispatcher: Dispatcher | None = None
        self._task: TaskStore = task
        self._address: str | None = None
        self._follower: asyncio.Task[None] | None = None
        # Piece reports go out from one sender task, so a worker never waits on the report stream
        # before its next fetch (one write in flight per call; at most one report per piece queued).
        self._outbox: asyncio.Queue[PieceReport | None] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        # Piece digests as the task's origin reader reported them to the scheduler (`_source_digest`).
        self._source_digests: dict[int, str] = {}
        self._digest_refresh: asyncio.Task[None] | None = None
        self._digests_failed_at = -DIGEST_RETRY_S

    # ---- entry -------------------------------------------------------------------------------

    async def run(self, task: TaskStore) -> None:
        self._task = task
        present = {n for n in range(task.piece_count) if task.has_piece(n)}
        workers = self.node.config.download.parent_concurrency
        dispatcher = self._dispatcher = Dispatcher(
            task.piece_count,
            present,
            workers=workers,
            rng=random.Random(),
            per_parent=PARENT_FETCHES,
            source_workers=self.node.config.download.source_concurrency,
            source_run=source_run_pieces(task.piece_size, self.node.config.download.source_concurrency),
        )
        if dispatcher.complete:
            return
        address = self.node.scheduler.pick(task.task_id) if self.node.scheduler is not None else None
        if address is None:
            log.info("task_id=%s no scheduler reachable: back-to-source", task.task_id)
            dispatcher.to_source()
            await self._work(dispatcher)
            return
        started = time.monotonic()
        try:
            await self._run_p2p(task, dispatcher)
        except asyncio.CancelledError:
            raise
        except P2PError as exc:
            await self._report_result(False, started, code=Code.SCHED_ERROR, description=exc.message)
            raise
        else:
            await self._report_result(True, started)
        finally:
            await self._shutdown()

    async def _run_p2p(self, task: TaskStore, dispatcher: Dispatcher) -> None:
        scheduler = self.node.scheduler
        assert scheduler is not None
        spec = TaskSpec(url=self.url, stat=self.stat, piece_size=task.piece_size, byte_range=task.byte_range)
        reg = Registration(task_id=task.task_id, peer_id=self.peer_id, host=self.node.host_info, spec=spec)
        try:
            address, registered = await scheduler.register(reg)
            self._stream = scheduler.open_reports(address)
            self._address = address
            await self._stream.send(PieceReport(kind=ReportKind.BEGIN, task_id=task.task_id, peer_id=self.peer_id))
        except P2PError as exc:
            log.info("task_id=%s registration failed (%s): back-to-source", task.task_id, exc.message)
            dispatcher.to_source()
            await self._work(dispatcher)
            return
        # The packet reader runs until the scheduler ends the stream (after our END report): cancelling
        # a pending read would cancel the whole call, and the reports with it.
        self._follower = asyncio.get_running_loop().create_task(self._follow(self._stream, dispatcher, reg))
        self._sender = asyncio.get_running_loop().create_task(self._send_queued())
        await self._take_shortcut(registered, dispatcher)
        watch = asyncio.get_running_loop().create_task(self._watch(dispatcher))
        try:
            await self._work(dispatcher)
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    async def _take_shortcut(self, registered: RegisterResult, dispatcher: Dispatcher) -> None:
        """A task that already succeeded elsewhere and is small needs no scheduling round: TINY content
        came with the registration, SMALL names a finished parent for its one piece (checked against
        the digest the origin reader reported). If that fails the scheduler schedules us as usual."""
        expected = registered.piece
        if registered.scope is SizeScope.TINY and expected is not None:
            try:
                piece = await self._task.write_piece(0, registered.content, expected_digest=expected.digest)
            except (PieceDigestMismatch, ValueError) as exc:
                log.warning("task_id=%s content sent with the registration is wrong: %s", self._task.task_id, exc)
                dispatcher.to_source()
                return
            dispatcher.landed(0)
            self._landed(piece, None, 0.0, dispatcher)
        elif registered.scope is SizeScope.SMALL and registered.parent is not None and expected is not None:
            self._source_digests[0] = expected.digest
            added, _ = dispatcher.set_parents((registered.parent,))
            for parent in added:
                dispatcher.update_pieces(parent, [expected], done=True)

    async def _watch(self, dispatcher: Dispatcher) -> None:
        """Safety nets: no parents within the schedule timeout, or parents that deliver nothing for a
        piece timeout, send this run to the origin."""
        schedule_s = self.node.config.scheduler.schedule_timeout_s
        stall_s = self.node.config.download.piece_timeout_s
        started = time.monotonic()
        while dispatcher.mode is not Mode.SOURCE:
            await asyncio.sleep(min(1.0, stall_s / 4, schedule_s / 4))
            now = time.monotonic()
            if dispatcher.mode is Mode.WAITING and now - started > schedule_s:
                log.info("task_id=%s no parents within %.0fs: back-to-source", self._task.task_id, schedule_s)
                dispatcher.to_source()
            elif dispatcher.mode is Mode.PEERS and now - dispatcher.last_progress > stall_s:
                log.warning("task_id=%s no piece from parents for %.0fs: back-to-source", self._task.task_id, stall_s)
                dispatcher.to_source()

    # ---- following the scheduler ----------------------------------------------------------------

    async def _follow(self, stream: ReportStream, dispatcher: Dispatcher, reg: Registration) -> None:
        listening = True
        try:
            async for packet in stream.packets():
                # After an instruction to use the origin, later packets are read but change nothing.
                if listening:
                    listening = await self._apply(packet, dispatcher, reg)
        except SchedulerUnavailable as exc:
            log.info("task_id=%s scheduler stream ended: %s", reg.task_id, exc.message)
        # The scheduler is gone: keep the parents we have; with none, read from the origin.
        if not dispatcher.complete and (dispatcher.mode is Mode.WAITING or not dispatcher.parents):
            dispatcher.to_source()

    async def _apply(self, packet: PeerPacket, dispatcher: Dispatcher, reg: Registration) -> bool:
        """Apply one packet; False once no further packets matter."""
        if packet.code is Code.OK:
            added, removed = dispatcher.set_parents(packet.parents)
            for state in removed:
                self._stop_syncer(state.peer_id)
            for state in added:
                self._start_syncer(state, dispatcher)
            log.debug("task_id=%s parents %s", reg.task_id, [p.peer_id for p in packet.parents])
            return True
        if packet.code is Code.REREGISTER and self.node.scheduler is not None:
            await self.node.scheduler.register(reg)
            assert self._stream is not None
            await self._stream.send(PieceReport(kind=ReportKind.BEGIN, task_id=reg.task_id, peer_id=reg.peer_id))
            return True
        # NEED_BACK_TO_SOURCE, or scheduling gave up: the origin is the way left.
        log.info("task_id=%s scheduler says %s: back-to-source", reg.task_id, packet.code.name)
        dispatcher.to_source()
        return False

    # ---- following parents -------------------------------------------------------------------------

    def _start_syncer(self, parent: ParentState, dispatcher: Dispatcher) -> None:
        self._syncers[parent.peer_id] = asyncio.get_running_loop().create_task(self._sync(parent, dispatcher))

    def _stop_syncer(self, peer_id: PeerID) -> None:
        job = self._syncers.pop(peer_id, None)
        if job is not None:
            job.cancel()

    async def _sync(self, parent: ParentState, dispatcher: Dispatcher) -> None:
        """Follow a parent's piece list until it has every piece."""
        task = self._task
        while not parent.done and parent.peer_id in dispatcher.parents:
            try:
                table = await self.node.parents.piece_table(parent.info, task.task_id, have=len(parent.pieces))
            except ParentError as exc:
                log.info("task_id=%s parent %s: %s", task.task_id, parent.peer_id, exc.message)
                await self._parent_failed(parent, None, exc.code)
                return
            if table.piece_size != task.piece_size or table.content_length != task.content_length:
                await self._parent_failed(parent, None, Code.PIECE_DOWNLOAD_FAIL)
                return
            dispatcher.update_pieces(parent, table.pieces, table.done)

    async def _parent_failed(self, parent: ParentState, piece: PieceInfo | None, code: Code) -> None:
        """Stop using a parent in this run and tell the scheduler, which sends other parents."""
        dispatcher = self._dispatcher
        assert dispatcher is not None
        dispatcher.block(parent.peer_id)
        self._stop_syncer(parent.peer_id)
        await self._send(
            PieceReport(
                kind=ReportKind.PIECE,
                task_id=self._task.task_id,
                peer_id=self.peer_id,
                parent_id=parent.peer_id,
                piece=piece,
                success=False,
                code=code,
            )
        )
        if not dispatcher.parents and self._stream is None:
            dispatcher.to_source()

    async def _send_queued(self) -> None:
        while (report := await self._outbox.get()) is not None:
            await self._send(report)

    def _post(self, report: PieceReport) -> None:
        """Queue a report for the sender task (sent directly when there is none: no scheduler)."""
        if self._sender is not None and not self._sender.done():
            self._outbox.put_nowait(report)

    async def _send(self, report: PieceReport) -> None:
        if self._stream is None:
            return
        try:
            await self._stream.send(report)
        except SchedulerUnavailable as exc:
            log.info("task_id=%s reports to the scheduler stopped: %s", self._task.task_id, exc.message)
            # Without a scheduler no new parents come: once the current ones are gone, use the origin.
            self._stream = None
            dispatcher = self._dispatcher
            if dispatcher is not None and not dispatcher.parents:
                dispatcher.to_source()

    # ---- fetching pieces ------------------------------------------------------------------------

    async def _work(self, dispatcher: Dispatcher) -> None:
        # Enough workers for either way of fetching: the mode may switch to the origin mid-run.
        download = self.node.config.download
        workers = max(1, download.parent_concurrency, download.source_concurrency)
        async with asyncio.TaskGroup() as tg:
            for _ in range(workers):
                tg.create_task(self._worker(dispatcher))

    async def _worker(self, dispatcher: Dispatcher) -> None:
        while (job := await dispatcher.next()) is not None:
            if job.parent is None:
                await self._source_run(job, dispatcher)
                continue
            started = time.monotonic()
            try:
                piece = await self._from_parent(job)
            except (ParentError, PieceDigestMismatch) as exc:
                busy = isinstance(exc, ParentError) and exc.busy
                dispatcher.failed(job, busy=busy)
                assert job.parent is not None
                if busy:
                    log.debug("task_id=%s piece=%d parent %s busy", self._task.task_id, job.number, job.parent.peer_id)
                    await asyncio.sleep(BUSY_BACKOFF_S)
                    continue
                code = exc.code if isinstance(exc, ParentError) else Code.DIGEST_MISMATCH
                log.warning(
                    "task_id=%s piece=%d from parent %s failed: %s",
                    self._task.task_id,
                    job.number,
                    job.parent.peer_id,
                    exc.message,
                )
                await self._parent_failed(job.parent, job.parent.pieces.get(job.number), code)
                continue
            except BaseException:
                dispatcher.failed(job)
                raise
            cost_ms = (time.monotonic() - started) * 1000
            dispatcher.finished(job, cost_ms)
            self._landed(piece, job.parent.peer_id, cost_ms, dispatcher)

    def _landed(self, piece: PieceInfo, parent_id: PeerID | None, cost_ms: float, dispatcher: Dispatcher) -> None:
        # One line per piece (debug): the benchmark's --trace builds its timeline from these.
        log.debug(
            "task_id=%s piece=%d from=%s cost_ms=%.0f", self._task.task_id, piece.number, parent_id or "origin", cost_ms
        )
        self._post(
            PieceReport(
                kind=ReportKind.PIECE,
                task_id=self._task.task_id,
                peer_id=self.peer_id,
                parent_id=parent_id,
                piece=piece,
                cost_ms=int(cost_ms),
                finished_count=len(dispatcher.present),
            )
        )

    async def _from_parent(self, job: Job) -> PieceInfo:
        parent = job.parent
        assert parent is not None
        expected = parent.pieces[job.number]
        digest = await self._source_digest(job.number, expected.digest)
        if digest != expected.digest:
            # A parent whose own copy is wrong, digests included: nothing is fetched from it.
            raise PieceDigestMismatch(
                f"parent {parent.peer_id} offers piece {job.number} with a digest the origin reader did not report"
            )
        await self.node.download_limit.acquire(expected.size)
        data = await self.node.parents.fetch_piece(parent.info, self._task.task_id, expected)
        # The digest check: bytes that do not match are dropped here and never reach a reader.
        return await self._task.write_piece(job.number, data, expected_digest=digest)

    async def _source_digest(self, number: int, advertised: str) -> str:
        """The digest piece `number` must have: the one the task's origin reader reported to the
        scheduler. The parent's own is used only when the scheduler cannot say (it is unreachable, or
        the report of a piece just read from the origin has not reached it yet)."""
        known = self._source_digests.get(number)
        # After a failed request, the parent's digests serve for a while: a scheduler that hangs must
        # not add its timeout to every piece.
        if known is None and time.monotonic() - self._digests_failed_at >= DIGEST_RETRY_S:
            if self._digest_refresh is None or self._digest_refresh.done():
                self._digest_refresh = asyncio.get_running_loop().create_task(self._refresh_source_digests())
            await asyncio.shield(self._digest_refresh)  # one request serves every worker waiting
            known = self._source_digests.get(number)
        if known is None:
            log.debug("task_id=%s piece=%d: no origin digest yet, the parent's is used", self._task.task_id, number)
        return advertised if known is None else known

    async def _refresh_source_digests(self) -> None:
        scheduler, address = self.node.scheduler, self._address
        if scheduler is None or address is None:
            return
        try:
            self._source_digests.update(await scheduler.source_digests(address, self._task.task_id))
        except P2PError as exc:
            self._digests_failed_at = time.monotonic()
            log.debug("task_id=%s origin digests unavailable: %s", self._task.task_id, exc.message)

    async def _source_run(self, job: Job, dispatcher: Dispatcher) -> None:
        """A run of consecutive pieces in one origin read; each is reported as soon as it is stored."""
        started = time.monotonic()
        run = read_run(self._task, self.node.sources, self.url, job.numbers, pace=self.node.download_limit.acquire)
        try:
            async with contextlib.aclosing(run) as pieces:
                async for piece in pieces:
                    now = time.monotonic()
                    dispatcher.landed(piece.number)
                    self.source_bytes += piece.size
                    self._landed(piece, None, (now - started) * 1000, dispatcher)
                    started = now
        except BaseException:
            dispatcher.failed(job)
            raise
        dispatcher.finished(job)

    # ---- the end -------------------------------------------------------------------------------

    async def _report_result(self, success: bool, started: float, code: Code = Code.OK, description: str = "") -> None:
        scheduler, address = self.node.scheduler, self._address
        if scheduler is None or address is None:
            return
        task = self._task
        if self._sender is not None:
            self._outbox.put_nowait(None)  # the queued piece reports go out before END
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await self._send(PieceReport(kind=ReportKind.END, task_id=task.task_id, peer_id=self.peer_id))
        if self._stream is not None:
            await self._stream.close()
        if self._follower is not None:
            # The scheduler ends its side once it has read END; give it a moment before cancelling.
            drain_started = time.monotonic()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._follower), FOLLOW_DRAIN_S)
            log.debug("task_id=%s report stream drained in %.3fs", task.task_id, time.monotonic() - drain_started)
        result = PeerResult(
            task_id=task.task_id,
            peer_id=self.peer_id,
            success=success,
            content_length=task.content_length,
            total_piece_count=task.piece_count,
            cost_ms=int((time.monotonic() - started) * 1000),
            code=code,
            description=description,
            source_bytes=self.source_bytes,
            direct_piece=task.tiny_content() if success else b"",
        )
        with contextlib.suppress(P2PError):
            await scheduler.report_result(address, result)

    async def _shutdown(self) -> None:
        if self._digest_refresh is not None:
            self._digest_refresh.cancel()
            await asyncio.gather(self._digest_refresh, return_exceptions=True)
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
            self._follower = None
        syncers = list(self._syncers.values())
        for peer_id in list(self._syncers):
            self._stop_syncer(peer_id)
        await asyncio.gather(*syncers, return_exceptions=True)
        if self._stream is not None:
            await self._stream.close()
            self._stream.cancel()
            self._stream = None
