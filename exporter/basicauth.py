"""Basic auth against bcrypt hashes, without letting clients that have no password starve us.

bcrypt costs ~50 ms of CPU by design, so a check is an unauthenticated client's cheapest way
to burn our CPU. Hence:
- checks run on ONE dedicated thread: a storm costs at most one core, and never the default
  executor, which `getaddrinfo` (every probe of a node named by host name) needs;
- at most `PENDING_LIMIT` checks wait or run at once; beyond that the answer is 429 at once;
- a successful (user, password) pair is remembered, keyed by an HMAC with a key drawn at start
  (the cache never holds a password and its keys cannot be computed from outside), so
  Prometheus' scrape with the right password pays bcrypt once, not every scrape. Failures are
  never remembered, so wrong passwords cannot evict the right one.
- a password longer than 72 bytes is refused without bcrypt (bcrypt 5 raises on it; Go's
  bcrypt, used by exporter-toolkit, refuses it too).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import bcrypt

__all__ = ["CACHE_SIZE", "MAX_PASSWORD_BYTES", "PENDING_LIMIT", "BasicAuth", "TooBusy"]

PENDING_LIMIT = 4
CACHE_SIZE = 64
MAX_PASSWORD_BYTES = 72  # bcrypt's own limit

_CACHE_KEY = secrets.token_bytes(32)  # per process: cache keys mean nothing outside it


class TooBusy(Exception):
    """Too many password checks are already waiting: answer 429 and let the client retry."""


class _BcryptWorker:
    """One thread for every bcrypt check of the process, with a bound on what waits for it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending = 0
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, password: bytes, hashed: bytes) -> Future[bool]:
        with self._lock:
            if self._pending >= self._limit:
                raise TooBusy
            self._pending += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="bcrypt")
            executor = self._executor
        future = executor.submit(bcrypt.checkpw, password, hashed)
        # Counted until the check ends (or is cancelled before it started), not until the
        # client stops waiting: hanging up does not free a slot while bcrypt still runs.
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future[bool]) -> None:
        with self._lock:
            self._pending -= 1

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending


_WORKER = _BcryptWorker(PENDING_LIMIT)


class BasicAuth:
    """Checks `Authorization: Basic` credentials against bcrypt hashes (see the module doc)."""

    def __init__(self, users: Mapping[str, str], *, worker: _BcryptWorker = _WORKER) -> None:
        self._users = {name: hashed.encode() for name, hashed in users.items()}
        self._worker = worker
        self._good: OrderedDict[bytes, None] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    async def allows(self, user: str, password: str) -> bool:
        """True for a right pair; False for a wrong one; TooBusy when checks are queued up."""
        secret = password.encode()
        if len(secret) > MAX_PASSWORD_BYTES:
            return False
        key = hmac.digest(_CACHE_KEY, user.encode() + b"\0" + secret, hashlib.sha256)
        if key in self._good:
            self._good.move_to_end(key)
            return True
        # Unknown users cost the same bcrypt, so timing does not tell who exists.
        hashed = self._users.get(user) or _UNKNOWN_USER_HASH
        try:
            right = await asyncio.wrap_future(self._worker.submit(secret, hashed))
        except ValueError:  # a hash bcrypt cannot read; the web config checks their form
            return False
        if right and user in self._users:
            self._good[key] = None
            while len(self._good) > CACHE_SIZE:
                self._good.popitem(last=False)
            return True
        return False


# Checked for unknown users, so they cost what a known user costs. No password is meant to
# match it, and a match would not count (the user is unknown); a constant, because making a
# hash costs as much as a check and must not happen on the event loop. Cost 10, htpasswd's.
_UNKNOWN_USER_HASH = b"$2b$10$ySxkB36KUuGwG4k8wftOJ.fwsfm2vwKskZpvy5DtiHywBzxwrMk.."
