"""One owner per results folder (vi_contract.lease), with two drivers racing for a folder whose
last owner, on another host, has stopped beating."""

import json
import os
import socket
import threading
import time

import pytest

from vi_contract import lease
from vi_contract.lease import LEASE_FILE, Lease, LeaseHeld
from vi_contract.store import Store


def test_two_drivers_taking_over_a_dead_owners_lease_leave_one_owner(tmp_path, monkeypatch):
    """Both read the stale lease and wait 1.5 heartbeats to see whether it moves; the first
    takes it over meanwhile, so the second sees it move and refuses, naming the driver that
    holds it now (it named the dead owner, elsewhere:1)."""
    monkeypatch.setattr(lease, "HEARTBEAT_S", 1.0)
    store = Store.open(str(tmp_path / "r"))
    store.write_bytes(LEASE_FILE, json.dumps({"token": "old", "host": "elsewhere", "pid": 1, "heartbeat": 0.0}).encode())
    outcome: dict[str, object] = {}

    def drive(name: str, delay: float) -> None:
        time.sleep(delay)
        try:
            outcome[name] = Lease(store).acquire()
        except LeaseHeld as err:
            outcome[name] = err

    threads = [threading.Thread(target=drive, args=("first", 0.0)), threading.Thread(target=drive, args=("second", 1.2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    won = [n for n, v in outcome.items() if isinstance(v, Lease)]
    try:
        assert won == ["first"], outcome
        assert f"is in use by the driver {socket.gethostname()}:{os.getpid()};" in str(outcome["second"])
        assert json.loads(store.read_bytes(LEASE_FILE))["token"] == outcome["first"].token
    finally:
        for v in outcome.values():
            if isinstance(v, Lease):
                v.release()


def test_a_live_owner_is_refused_with_its_name_and_the_way_out(tmp_path):
    store = Store.open(str(tmp_path / "r"))
    with Lease(store).acquire():
        with pytest.raises(LeaseHeld, match=r"is in use by the driver .*:\d+; wait for it to finish, or if it is gone pass --force"):
            Lease(store).acquire()
    assert not store.exists(LEASE_FILE)  # released


def test_a_lease_with_no_usable_pid_has_no_live_owner(tmp_path):
    """pid 0 or -1 made os.kill ask about a process group (alive), a huge one raised."""
    store = Store.open(str(tmp_path / "r"))
    for pid in (0, -1, 10**30, "abc"):
        store.write_bytes(LEASE_FILE, json.dumps({"token": "t", "host": socket.gethostname(), "pid": pid}).encode())
        lease = Lease(store)
        assert not lease._owner_alive(json.loads(store.read_bytes(LEASE_FILE)))
