"""backends.sqlite.group_commit: every queued batch is settled, whatever fails, so nothing is acknowledged falsely."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

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
