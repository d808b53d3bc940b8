"""Server-Sent Events from a synchronous event iterator, with a ``: ping`` while the model is quiet.

The pipeline is synchronous (boto3, llama.cpp), so it runs in a worker thread feeding a queue;
the response awaits the queue and sends a ping comment every PING_INTERVAL seconds of silence,
which keeps proxies and load balancers from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from starlette.responses import StreamingResponse

from cgchat.chat import stream_models as sm

PING_INTERVAL = 10.0
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
_END = object()
T = TypeVar("T")
# Each open stream holds a thread for as long as its model talks (mostly waiting on the network). The event
# loop's default executor has min(32, cores + 4) threads, so on 2 cores the 7th concurrent stream waited for
# one of the first six to end before it got even its `meta` event: streams get a pool of their own.
MAX_STREAMS = 256
_STREAM_THREADS = ThreadPoolExecutor(max_workers=MAX_STREAMS, thread_name_prefix="sse-stream")


async def in_stream_thread(work: Callable[[], T]) -> T:
    """Run a whole model answer (POST /v1/chat) on a stream thread: on Starlette's threadpool it would hold
    one of the 40 threads that every sync route (search, sessions, /healthz) shares, while the model talks."""
    return await asyncio.get_running_loop().run_in_executor(_STREAM_THREADS, work)


def sse_response(events: Iterator[sm.StreamEvent], ping_interval: float = PING_INTERVAL) -> StreamingResponse:
    return StreamingResponse(_frames(events, ping_interval), media_type="text/event-stream", headers=HEADERS)


async def _frames(events: Iterator[sm.StreamEvent], ping_interval: float) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    cancelled = threading.Event()

    def produce() -> None:
        try:
            for event in events:
                if cancelled.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, event)
        except Exception as exc:  # the pipeline promises not to raise; if it does, end the stream cleanly
            error = sm.Error(code="internal_error", message=f"the answer could not be completed ({type(exc).__name__})",
                             retryable=True)
            loop.call_soon_threadsafe(queue.put_nowait, error)
            loop.call_soon_threadsafe(queue.put_nowait, sm.Done(finish_reason="error"))
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # a client that left stops the model stream now (the provider closes its connection)
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    worker = loop.run_in_executor(_STREAM_THREADS, produce)
    event_id = 0
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=ping_interval)
            except TimeoutError:
                yield sm.PING
                continue
            if item is _END:
                break
            event_id += 1
            yield sm.to_sse(item, event_id)  # type: ignore[arg-type]
    finally:
        cancelled.set()  # client gone: stop pulling from the model
        await worker
