"""Dynamic batching: photos of concurrent requests answered by one forward pass.

Each request decodes its uploads in its own worker thread (so decoding runs in
parallel) and turns each photo into the model's input tensor there
(:meth:`~trigeo.serve.engine.Engine.prepare`); then it hands the tensors to
the :class:`Batcher` and awaits its answers.

The batcher starts a forward pass when fewer than ``max_concurrent`` passes
are running and photos are waiting. A pass takes at most ``batch_size``
photos, from any requests, whatever their ``top_k`` or posting time. Before
it starts, a pass waits up to ``batch_wait_ms`` to fill, but only while more
photos are likely to come: while an admitted request is still reading or
decoding its upload, or, when requests have lately been admitted less than
``batch_wait_ms`` apart, for about two such gaps after the last one. A lone
request, or a slow trickle, never waits, so batching costs nothing at
concurrency 1.

A failing pass is retried photo by photo, so one photo that breaks the model
fails only its own request. The answers (credible regions, places, the index
search, once per pass) are built in the pass's thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from trigeo.serve.engine import Engine
from trigeo.serve.limits import Admission, Ticket

__all__ = ["Batcher", "Job"]


@dataclass
class Job:
    """One photo of one request, ready for a forward pass.

    Attributes
    ----------
    input
        The backend's input (:meth:`Engine.prepare`).
    posted_at
        Posting time (M2 models), or ``None``.
    truth
        EXIF GPS position, or ``None``.
    top_k
        Regions listed in ``top_k`` for this photo's request.
    geojson
        Whether the answer carries GeoJSON geometry.
    ticket
        The request's admission ticket (counts it as in a pass).
    """

    input: Any
    posted_at: Any
    truth: tuple[float, float] | None
    top_k: int
    geojson: bool
    ticket: Ticket
    future: asyncio.Future[Any] | None = field(default=None, repr=False)


class Batcher:
    """Groups the photos of concurrent requests into forward passes.

    Parameters
    ----------
    engine
        The model and the answer.
    admission
        Request counts: the batcher waits for ``admission.arriving`` requests
        while a pass fills, and keeps ``admission.running`` and the
        ``Retry-After`` estimate up to date.
    batch_size
        Most photos in one pass (1: every photo its own pass).
    batch_wait_ms
        Longest wait for a pass to fill.
    max_concurrent
        Forward passes running at once (one worker thread each).
    """

    def __init__(
        self,
        engine: Engine,
        admission: Admission,
        *,
        batch_size: int,
        batch_wait_ms: float,
        max_concurrent: int,
    ) -> None:
        if batch_size < 1 or max_concurrent < 1 or batch_wait_ms < 0:
            raise ValueError("batch_size, max_concurrent >= 1 and batch_wait_ms >= 0 required")
        self.engine, self.admission = engine, admission
        self.batch_size, self.max_concurrent = int(batch_size), int(max_concurrent)
        self.wait_s = float(batch_wait_ms) / 1000.0
        self.pending: deque[Job] = deque()
        self.filling = False
        #: Photos in each recent pass (for /v1/health and the tests).
        self.pass_sizes: deque[int] = deque(maxlen=256)
        #: Passes that waited to fill, and the seconds they waited in all.
        self.fill_waits = 0
        self.fill_wait_s = 0.0
        self._arrived: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._executor: ThreadPoolExecutor | None = None

    async def submit(self, jobs: Sequence[Job]) -> list[Any]:
        """Answers for the jobs, in order; an ``Exception`` in place of a failed one."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # An asyncio.Event belongs to one loop; a test may drive the app from several.
            self._loop, self._arrived = loop, asyncio.Event()
        for job in jobs:
            job.future = loop.create_future()
            self.pending.append(job)
        self._arrived.set()
        self._kick()
        return list(await asyncio.gather(*(job.future for job in jobs)))  # type: ignore[misc]

    def notify(self) -> None:
        """A request stopped being on its way (failed before submitting): stop waiting."""
        if self._arrived is not None:
            self._arrived.set()

    def _kick(self) -> None:
        """Start filling a pass if photos wait, no pass is filling and a slot is free."""
        if self.pending and not self.filling and self.admission.running < self.max_concurrent:
            self.filling = True
            task = asyncio.get_running_loop().create_task(self._dispatch())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._arrived is not None
        try:
            deadline = loop.time() + self.wait_s
            waited_since: float | None = None
            while len(self.pending) < self.batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                if self.admission.arriving > 0:
                    # A request is reading or decoding its upload: wait for its photos.
                    timeout = remaining
                elif self.admission.arrival_gap < self.wait_s:
                    # Requests come faster than a pass waits (clients answered by the last
                    # pass are sending their next): wait about two gaps for one more.
                    timeout = min(remaining, 2 * self.admission.arrival_gap)
                else:
                    break  # a lone request, or a slow trickle: go at once
                if waited_since is None:
                    waited_since = loop.time()
                    self.fill_waits += 1
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), timeout)
                except TimeoutError:
                    if self.admission.arriving == 0:
                        break
            if waited_since is not None:
                self.fill_wait_s += loop.time() - waited_since
            take = [self.pending.popleft() for _ in range(min(self.batch_size, len(self.pending)))]
        finally:
            self.filling = False
        if not take:
            return
        self.admission.running += 1
        for job in take:
            self.admission.pass_started(job.ticket)
        # Another pass may start at once with the photos left over.
        self._kick()
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._pool(), self._run, take)
        except Exception as exc:  # a one-photo pass failed (or the pool is shut down)
            results = [exc] * len(take)
        finally:
            self.admission.running -= 1
            self.admission.record(time.perf_counter() - start)
            for job in take:
                self.admission.pass_ended(job.ticket)
        self.pass_sizes.append(len(take))
        for job, result in zip(take, results, strict=True):
            assert job.future is not None
            if not job.future.done():
                job.future.set_result(result)
        self._kick()

    def _run(self, jobs: list[Job]) -> list[Any]:
        """One forward pass and its answers (in a pass thread); failures per photo."""
        engine = self.engine
        try:
            inferences = engine.infer_prepared(
                [job.input for job in jobs], [job.posted_at for job in jobs]
            )
        except Exception:
            if len(jobs) == 1:
                raise
            # Find the photo that broke the pass: each alone, so only it fails.
            return [self._run_one(job) for job in jobs]
        try:
            return engine.answers(
                inferences,
                [job.truth for job in jobs],
                [job.top_k for job in jobs],
                [job.geojson for job in jobs],
            )
        except Exception:
            if len(jobs) == 1:
                raise
            return [self._run_one(job) for job in jobs]

    def _run_one(self, job: Job) -> Any:
        try:
            return self._run([job])[0]
        except Exception as exc:
            return exc

    def _pool(self) -> ThreadPoolExecutor:
        # Passes run here, not in anyio's shared pool: at most max_concurrent at once.
        # Created on first use (again after close) so an app can be started twice.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self.max_concurrent, thread_name_prefix="trigeo-pass"
            )
        return self._executor

    def close(self) -> None:
        """Stop the pass threads (after the running passes end)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
