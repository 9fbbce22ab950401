"""backends.sqlite.group_commit: every queued batch is settled, whatever fails, so nothing is acknowledged falsely."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support import wait_until

from backends.sqlite.group_commit import GroupCommitter


def test_groups_form_under_concurrency_and_results_go_back_to_their_batch(tmp_path: Path) -> None:
    groups: list[list[int]] = []

    def commit_all(batches):
        groups.append(list(batches))
        time.sleep(0.005)  # a slow disk sync: later arrivals queue up behind it
        return [b * 10 if b % 7 else ValueError(f"bad {b}") for b in batches]

    committer = GroupCommitter(commit_all, lock_path=str(tmp_path / "lock"))
    results: dict[int, object] = {}

    def submit(n: int) -> None:
        try:
            results[n] = committer.submit(n)
        except ValueError as exc:
            results[n] = str(exc)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(1, 41)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: (n * 10 if n % 7 else f"bad {n}") for n in range(1, 41)}
    assert sorted(b for g in groups for b in g) == list(range(1, 41))
    assert len(groups) < 40  # some batches really shared a commit


def test_a_failing_lock_settles_every_queued_batch_with_the_error(tmp_path: Path) -> None:
    """The leader's lock file cannot be opened: the followers it took must fail too, not return None."""
    stored: list[int] = []
    release = threading.Event()

    def commit_all(batches):
        release.wait(5)
        stored.extend(batches)
        return [1] * len(batches)

    committer = GroupCommitter(commit_all, lock_path=str(tmp_path / "lock"))
    first = threading.Thread(target=committer.submit, args=(0,))
    first.start()  # holds the writer lock inside commit_all
    time.sleep(0.05)
    committer.lock_path = str(tmp_path / "missing-dir" / "lock")  # the next leader's open fails
    committer._lock_fd = None
    outcomes: dict[int, object] = {}

    def submit(n: int) -> None:
        try:
            outcomes[n] = committer.submit(n)
        except OSError as exc:
            outcomes[n] = type(exc).__name__

    followers = [threading.Thread(target=submit, args=(n,)) for n in (1, 2, 3)]
    for thread in followers:
        thread.start()
    time.sleep(0.05)
    release.set()
    first.join()
    for thread in followers:
        thread.join()
    assert outcomes == {1: "FileNotFoundError", 2: "FileNotFoundError", 3: "FileNotFoundError"}
    assert stored == [0]


def test_wrong_number_of_results_is_an_error() -> None:
    committer = GroupCommitter(lambda batches: [])
    with pytest.raises(RuntimeError, match="0 results for 1 batches"):
        committer.submit("x")


def test_the_commit_runs_in_a_submitting_thread_and_batches_queued_meanwhile_lead_the_next_one(tmp_path: Path) -> None:
    """No writer thread: the first submitter commits; batches queued during its commit are committed together by
    one of their own threads, after it (each group only once the lock is held)."""
    first_in = threading.Event()
    release = threading.Event()
    groups: list[tuple[list[str], str]] = []

    def commit_all(batches):
        groups.append((list(batches), threading.current_thread().name))
        if batches == ["first"]:
            first_in.set()
            release.wait(5)
        return [b.upper() for b in batches]

    committer = GroupCommitter(commit_all, lock_path=str(tmp_path / "lock"))
    results: dict[str, object] = {}
    before = threading.active_count()

    def submit(name: str) -> None:
        results[name] = committer.submit(name)

    first = threading.Thread(target=submit, args=("first",), name="first")
    first.start()
    assert first_in.wait(5)
    later = [threading.Thread(target=submit, args=(f"b{n}",), name=f"b{n}") for n in range(5)]
    for thread in later:
        thread.start()
    wait_until(lambda: len(committer._queue) >= 5)
    assert threading.active_count() == before + 6  # the submitters only: nobody started a writer thread
    release.set()
    for thread in (first, *later):
        thread.join(5)
    assert results == {"first": "FIRST", **{f"b{n}": f"B{n}" for n in range(5)}}
    assert groups[0] == (["first"], "first")
    assert len(groups) == 2 and sorted(groups[1][0]) == [f"b{n}" for n in range(5)]
    assert groups[1][1] in {f"b{n}" for n in range(5)}  # led by one of the queued batches' own threads


def test_a_leader_interrupted_mid_commit_settles_its_group_and_passes_the_lead(tmp_path: Path) -> None:
    """Whatever the leader's commit raises (BaseException included), its group gets that error and the batches
    queued after it are still committed: the lead is never lost."""
    calls: list[list[str]] = []
    first_in = threading.Event()
    release = threading.Event()

    def commit_all(batches):
        calls.append(list(batches))
        if batches == ["doomed"]:
            first_in.set()
            release.wait(5)
            raise KeyboardInterrupt  # not an Exception: must still settle and hand over
        return ["ok"] * len(batches)

    committer = GroupCommitter(commit_all, lock_path=str(tmp_path / "lock"))
    outcomes: dict[str, object] = {}

    def submit(name: str) -> None:
        try:
            outcomes[name] = committer.submit(name)
        except BaseException as exc:  # the test records what each submitter got
            outcomes[name] = type(exc).__name__

    doomed = threading.Thread(target=submit, args=("doomed",))
    doomed.start()
    assert first_in.wait(5)
    after = [threading.Thread(target=submit, args=(name,)) for name in ("x", "y")]
    for thread in after:
        thread.start()
    wait_until(lambda: len(committer._queue) >= 2)
    release.set()
    for thread in (doomed, *after):
        thread.join(5)
        assert not thread.is_alive()
    assert outcomes == {"doomed": "KeyboardInterrupt", "x": "ok", "y": "ok"}
    assert committer.submit("z") == "ok" and not committer._leading


def test_a_submitter_interrupted_while_waiting_withdraws_and_the_lead_is_not_lost(tmp_path: Path) -> None:
    """A signal handler raising in the main thread while it waits behind a leader (Ctrl-C in a script): its batch
    is withdrawn, never committed, and batches queued behind it are still committed, also later ones."""
    import signal

    first_in = threading.Event()
    release = threading.Event()
    committed: list[str] = []

    def commit_all(batches):
        if "leader" in batches:
            first_in.set()
            release.wait(5)
        committed.extend(batches)
        return ["ok"] * len(batches)

    committer = GroupCommitter(commit_all, lock_path=str(tmp_path / "lock"))
    results: dict[str, object] = {}

    def submit(name: str) -> None:
        results[name] = committer.submit(name)

    leader = threading.Thread(target=submit, args=("leader",))
    leader.start()
    assert first_in.wait(5)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(KeyboardInterrupt):
            committer.submit("interrupted")  # waits behind the leader until the signal
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    behind = threading.Thread(target=submit, args=("behind",))
    behind.start()
    wait_until(lambda: len(committer._queue) >= 1)
    release.set()
    leader.join(5)
    behind.join(5)
    assert not behind.is_alive()
    assert committer.submit("later") == "ok"
    assert results == {"leader": "ok", "behind": "ok"}
    assert "interrupted" not in committed and sorted(committed) == ["behind", "later", "leader"]
    assert not committer._leading and committer._queue == []


def test_every_submit_settles_once_under_fast_thread_switching(tmp_path: Path) -> None:
    """8 threads x 8,000 submits with threads switched every microsecond: a lead handed over between a submitter
    queueing and starting to wait must not release its signal twice (every submit returns its own result)."""
    import sys

    committed: list[int] = []

    def commit_all(batches):
        committed.extend(batches)
        return [b * 2 for b in batches]

    committer = GroupCommitter(commit_all, lock_path=str(tmp_path / "lock"))
    problems: list[str] = []

    def worker(n: int) -> None:
        for i in range(8000):
            batch = n * 10_000 + i
            try:
                if committer.submit(batch) != batch * 2:
                    problems.append(f"wrong result for {batch}")
            except BaseException as exc:  # the test records what each submitter got
                problems.append(repr(exc))

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(previous)
    assert problems == []
    assert sorted(committed) == sorted(n * 10_000 + i for n in range(8) for i in range(8000))
    assert not committer._leading and committer._queue == []
