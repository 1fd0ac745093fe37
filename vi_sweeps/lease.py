"""One owner per results folder: the driver of a sweep holds a lease, RESULTS/lease.json,
written atomically through the store (so it works on local disks and object storage alike).

A driver takes the lease when there is none, when it has expired (no heartbeat for EXPIRY_S),
when its owner is a process on this host that no longer exists, or with `--force`. Without a
compare-and-swap on object storage, two drivers starting at the same moment are told apart by
writing, waiting SETTLE_S, and reading back: the last writer wins and the other refuses. While
it runs, the owner renews the lease every HEARTBEAT_S; if it finds another owner there (a
`--force` takeover), it stops its sweep. Readers (`status`, `report`) never take the lease.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from vi_sweeps.storage import Store

LEASE_FILE = "lease.json"
HEARTBEAT_S = 10.0
EXPIRY_S = 60.0
SETTLE_S = 1.0
ORPHANS_S = 5.0


class LeaseHeld(RuntimeError):
    """Another driver owns the results folder; the message names it and how to take over."""


def _alive_here(lease: dict) -> bool:
    if lease.get("host") != socket.gethostname():
        return True  # another machine's process: only its heartbeat can tell
    try:
        os.kill(int(lease["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lease(store: Store) -> dict | None:
    try:
        return json.loads(store.read_bytes(LEASE_FILE))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: treated as expired


@dataclass
class Lease:
    store: Store
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _record(self) -> dict:
        now = time.time()
        return {"token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                "heartbeat": now, "expires": now + EXPIRY_S}

    def acquire(self, force: bool = False) -> Lease:
        held = read_lease(self.store)
        if held and not force and held.get("expires", 0) > time.time() and _alive_here(held):
            age = time.time() - held.get("heartbeat", 0)
            raise LeaseHeld(
                f"{self.store.uri} is in use by the driver {held.get('host')}:{held.get('pid')} "
                f"(last heartbeat {age:.0f} s ago); wait for it to finish, or if it is gone pass --force "
                f"or wait {max(0, held['expires'] - time.time()):.0f} s for its lease to expire")
        if held and not _alive_here(held):
            time.sleep(ORPHANS_S)  # a killed driver's Ray workers outlive it by a moment
        self.store.write_bytes(LEASE_FILE, json.dumps(self._record()).encode())
        time.sleep(SETTLE_S)
        now = read_lease(self.store)
        if not now or now.get("token") != self.token:
            raise LeaseHeld(f"{self.store.uri} was taken at the same moment by the driver "
                            f"{(now or {}).get('host')}:{(now or {}).get('pid')}; run again once it is done")
        self._thread = threading.Thread(target=self._beat, name="vi-sweeps-lease", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                held = read_lease(self.store)
                if not held or held.get("token") != self.token:
                    self.lost.set()
                    return
                self.store.write_bytes(LEASE_FILE, json.dumps(self._record()).encode())
            except OSError:
                continue  # a transient store error: try again at the next beat

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            held = read_lease(self.store)
            if held and held.get("token") == self.token:
                self.store.delete(LEASE_FILE)
        except OSError:
            pass

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
