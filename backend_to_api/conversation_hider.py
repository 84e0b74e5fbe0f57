"""Hiding finished conversations upstream (need_delete_conversation_after_response), off the
response path: the client has its answer and must not wait for the PATCH.

A bounded queue per worker process, served by a few threads (greenlets under gevent) started on
the first job: a thread per chat would be one more OS thread for every reply under gthread
workers, and an unbounded number of them when the upstream is slow to answer the PATCH. A job
that finds the queue full is dropped with a warning (the conversation stays visible upstream).
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Generic, Optional, TypeVar

from .errors import UpstreamError
from .upstream.path_segments import segment

log = logging.getLogger(__name__)

Job = TypeVar("Job")

HIDING_THREADS = 4
QUEUE_CAPACITY = 1000


class ConversationHider(Generic[Job]):
    def __init__(self, hide: Callable[[Job], None], threads: int = HIDING_THREADS,
                 capacity: int = QUEUE_CAPACITY) -> None:
        self._hide = hide
        self._threads = threads
        self._queue: "queue.Queue[Job]" = queue.Queue(capacity)
        self._lock = threading.Lock()
        self._started = False

    def submit(self, job: Job) -> bool:
        """Queue ``job`` for hiding; False (and a warning) when the queue is full."""
        self._start_once()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            log.warning("%d conversations are waiting to be hidden; this one stays visible", self._queue.qsize())
            return False
        return True

    def _start_once(self) -> None:
        # Started on the first job, in the process that serves it (never in a gunicorn master
        # that forks afterwards: its threads would not survive the fork).
        with self._lock:
            if self._started:
                return
            self._started = True
        for index in range(self._threads):
            threading.Thread(target=self._serve, name=f"hide-conversations-{index}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            job = self._queue.get()
            try:
                self._hide(job)
            except Exception:  # one failed hide must not stop the others
                log.exception("hiding a conversation failed")


@dataclass(frozen=True)
class HideJob:
    """One conversation to hide, with the token the upstream accepted for it."""

    conversation_id: str
    access_token: str
    account_id: Optional[str] = None


def hide_with(upstream) -> Callable[[HideJob], None]:
    """The hide call for a ConversationHider of HideJobs (``upstream``: an UpstreamClient): a
    failure is logged, never raised (nobody waits for it)."""

    def hide(job: HideJob) -> None:
        try:
            segment(job.conversation_id)  # the upstream's word: it must not change the path we PATCH
        except ValueError as exc:
            log.warning("not hiding conversation: %s", exc)
            return
        try:
            ok = upstream.hide_conversation(job.conversation_id, job.access_token, job.account_id)
            log.debug("hid conversation %s: %s", job.conversation_id, ok)
        except UpstreamError as exc:
            log.warning("could not hide conversation %s: %s", job.conversation_id, exc.message)

    return hide
