"""The launched pipeline's coordination (paw.pipeline.ranks) against a real c10d TCPStore, two ranks in one process."""

import signal
import socket
import threading
from datetime import timedelta

import pytest
import torch.distributed as dist

from paw.errors import Interrupted, PawError
from paw.pipeline.ranks import PeerStopped, Ranks


@pytest.fixture
def launch(monkeypatch):
    """A store like torchrun's agent hosts, and a factory of Ranks for rank 0 and rank 1 of 2."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = dist.TCPStore("127.0.0.1", port, is_master=True, timeout=timedelta(seconds=30))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", f"test-{port}")

    def ranks(number: int) -> Ranks:
        monkeypatch.setenv("RANK", str(number))
        return Ranks()

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield ranks
    for sig, handler in handlers.items():  # rank 0's abort shields it from the launcher's signals
        signal.signal(sig, handler)
    del server


def _follow(ranks: Ranks, name: str, out: dict) -> threading.Thread:
    def wait():
        try:
            out["value"] = ranks.share(name, lambda: pytest.fail("a follower never runs rank 0's work"))
        except BaseException as err:  # noqa: BLE001
            out["error"] = err

    thread = threading.Thread(target=wait, daemon=True)  # a hung wait must not hang the suite
    thread.start()
    return thread


def test_rank_0_works_and_the_others_receive_its_result(launch):
    main, follower = launch(0), launch(1)
    got: dict = {}
    thread = _follow(follower, "step/plan", got)
    assert main.share("step/plan", lambda: {"action": "run", "n": 3}) == {"action": "run", "n": 3}
    thread.join(10)
    assert got == {"value": {"action": "run", "n": 3}}


def test_rank_0_failing_stops_the_waiting_ranks_with_its_exit_code(launch):
    main, follower = launch(0), launch(1)
    got: dict = {}
    thread = _follow(follower, "step/done", got)
    main.abort(Interrupted(15))  # SIGTERM on rank 0: the others stop with 143, quietly
    thread.join(10)
    assert isinstance(got["error"], PeerStopped) and got["error"].exit_code == 143 and got["error"].quiet
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN  # rank 0 finishes its last line undisturbed


def test_an_input_every_rank_reads_fails_alike_and_rank_0_alone_says_it(launch):
    main, follower = launch(0), launch(1)
    got: dict = {}

    def follow():
        try:
            follower.fail_alike(PawError("c.yaml: config file not found"))
        except BaseException as err:  # noqa: BLE001
            got["error"] = err

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    with pytest.raises(PawError, match="config file not found") as raised:
        main.fail_alike(PawError("c.yaml: config file not found"))
    assert not getattr(raised.value, "quiet", False)  # rank 0's is the line printed
    thread.join(10)
    assert isinstance(got["error"], PeerStopped) and got["error"].quiet and got["error"].exit_code == 2


def test_another_ranks_failure_reaches_rank_0_but_an_interruption_does_not(launch):
    main, follower = launch(0), launch(1)
    assert main.peer_failure() is None
    follower.fail(KeyboardInterrupt())  # Ctrl-C reaches every rank: rank 0 records it as resumable itself
    assert main.peer_failure() is None
    follower.fail(RuntimeError("CUDA error: an illegal memory access"))
    assert main.peer_failure() == ("rank 1: RuntimeError: CUDA error: an illegal memory access", 1)


def test_alone_every_call_is_an_identity(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    alone = Ranks()
    assert (alone.main, alone.many) == (True, False)
    assert alone.share("x", lambda: 5) == 5
    alone.abort(PawError("nothing to tell"))
    assert alone.peer_failure() is None


def test_a_launch_without_a_store_address_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(PawError, match="MASTER_ADDR/MASTER_PORT are not set"):
        Ranks().share("x", lambda: 1)
