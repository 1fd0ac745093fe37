"""One owner per results folder: the driver of a sweep holds a lease, RESULTS/lease.json,
written atomically through the store (so it works on local disks and object storage alike).

A driver takes the lease when there is none, when its owner is a process on this host that no
longer exists, when its owner on another host has stopped beating (its heartbeat unchanged over
1.5 heartbeats: no clocks of two machines are compared), or with `--force`. Without a
compare-and-swap on object storage, two drivers starting at the same moment are told apart by
writing, waiting, and reading back: the last writer wins and the other refuses; a forced
takeover waits a full heartbeat, so the owner it displaces either sees it and stops or writes
back and makes it refuse, never both running on. While it runs, the owner renews the lease
every HEARTBEAT_S; if it finds another owner there, it stops its sweep; a store that does not
answer is tried again at the next beat. Readers (`status`, `report`) never take the lease.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from vi_contract.store import Store


def pid_alive(pid: int) -> bool:
    """Whether a process of this host has that pid (a driver's lease, a report's building folder)."""
    if pid <= 0:  # 0 and -1 would ask about a process group, not a driver
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


LEASE_FILE = "lease.json"
HEARTBEAT_S = 10.0
SETTLE_S = 1.0
ORPHANS_S = 5.0


class LeaseHeld(RuntimeError):
    """Another driver owns the results folder; the message names it and how to take over."""


def read_lease(store: Store) -> dict | None:
    try:
        held = json.loads(store.read_bytes(LEASE_FILE))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: no owner can be read from it
    return held if isinstance(held, dict) else {}


def lease_pid(held: dict) -> int:
    """The owner's pid, or -1 where the lease does not hold one."""
    try:
        return int(held.get("pid", -1))
    except (TypeError, ValueError):
        return -1


@dataclass
class Lease:
    store: Store
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _record(self) -> dict:
        return {"token": self.token, "host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()}

    def _owner_alive(self, held: dict) -> bool:
        """Whether the lease's owner still drives: by its pid on this host, elsewhere by
        whether its heartbeat moves."""
        if held.get("host") == socket.gethostname():
            return pid_alive(lease_pid(held))
        time.sleep(1.5 * HEARTBEAT_S)
        return (read_lease(self.store) or {}).get("heartbeat") != held.get("heartbeat")

    def acquire(self, force: bool = False) -> Lease:
        held = read_lease(self.store)
        alive = bool(held) and self._owner_alive(held)
        if alive and not force:
            owner = read_lease(self.store) or held  # a stale lease that moved meanwhile: whoever took it over
            raise LeaseHeld(
                f"{self.store.uri} is in use by the driver {owner.get('host')}:{owner.get('pid')}; wait for it "
                "to finish, or if it is gone pass --force")
        if held and not alive and held.get("host") == socket.gethostname():
            time.sleep(ORPHANS_S)  # a killed driver's Ray workers outlive it by a moment
        self.store.write_bytes(LEASE_FILE, json.dumps(self._record()).encode())
        time.sleep(HEARTBEAT_S + SETTLE_S if alive else SETTLE_S)
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
                if held and held.get("token") not in (None, self.token):
                    self.lost.set()
                    return
                self.store.write_bytes(LEASE_FILE, json.dumps(self._record()).encode())
            except Exception:  # noqa: BLE001 - a store that does not answer now: try at the next beat
                continue

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
