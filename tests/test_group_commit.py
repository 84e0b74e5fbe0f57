"""GroupCommit with real threads: every caller gets its own answer, callers that arrive during a
round trip share the next one, failures reach the whole batch, and an interrupted waiter never
stalls the queue."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from backend_to_api.group_commit import GroupCommit, GroupCommitTimeout


class SlowSquares:
    """A round trip that takes a while, recording the batches it was given."""

    def __init__(self, delay: float = 0.05, fail_on: int = -1) -> None:
        self.delay = delay
        self.fail_on = fail_on
        self.batches = []

    def __call__(self, items):
        self.batches.append(list(items))
        time.sleep(self.delay)
        if self.fail_on in items:
            raise ValueError(f"item {self.fail_on} failed")
        return [item * item for item in items]


def run_callers(committer, items):
    answers, errors = {}, {}

    def call(item):
        try:
            answers[item] = committer.submit(item)
        except Exception as exc:  # noqa: BLE001 - the test records what each caller saw
            errors[item] = exc

    threads = [threading.Thread(target=call, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
        time.sleep(0.001)
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads)
    return answers, errors


def test_a_lone_caller_is_sent_at_once():
    run = SlowSquares(delay=0)
    assert GroupCommit(run).submit(7) == 49
    assert run.batches == [[7]]


def test_callers_during_a_round_trip_share_the_next_one():
    # A round trip long enough (0.5 s) that the 39 later callers all arrive during the first one,
    # even on a loaded machine: they must share one round trip, not make one each.
    run = SlowSquares(delay=0.5)
    answers, errors = run_callers(GroupCommit(run), list(range(40)))
    assert not errors and answers == {item: item * item for item in range(40)}
    assert run.batches[0] == [0]
    assert len(run.batches) == 2 and sorted(run.batches[1]) == list(range(1, 40))


def test_batches_are_capped():
    run = SlowSquares()
    answers, _ = run_callers(GroupCommit(run, max_batch=5), list(range(30)))
    assert len(answers) == 30 and max(len(batch) for batch in run.batches) <= 5


def test_a_failed_round_trip_fails_its_whole_batch_and_only_it():
    run = SlowSquares(fail_on=5)
    answers, errors = run_callers(GroupCommit(run), list(range(20)))
    failed_batch = next(batch for batch in run.batches if 5 in batch)
    assert set(errors) == set(failed_batch) and len(failed_batch) > 1
    assert all(str(exc) == "item 5 failed" for exc in errors.values())
    assert answers == {item: item * item for item in range(20) if item not in failed_batch}


# Under gevent (the default worker) a waiting greenlet can be killed, e.g. at shutdown. Here the
# waiter is killed just as the lead is handed to it: the kill is delivered first, so it leaves the
# queue holding the lead, and must pass it on or the caller behind it would wait forever.
KILLED_WAITER = """
from gevent import monkey; monkey.patch_all()
import gevent
from backend_to_api.group_commit import GroupCommit, GroupCommitTimeout

class Interrupted(Exception):
    pass

batches, waiters = [], {}

def run(items):
    batches.append(list(items))
    gevent.sleep(0.1)
    if items == [0]:
        waiters[1].kill(Interrupted, block=False)  # delivered before the hand-on below wakes it
    return [item * item for item in items]

committer = GroupCommit(run)
first = gevent.spawn(committer.submit, 0)
gevent.sleep(0.01)
waiters[1] = gevent.spawn(committer.submit, 1)
waiters[2] = gevent.spawn(committer.submit, 2)
gevent.joinall([first, waiters[1], waiters[2]], timeout=5)
print(first.value, type(waiters[1].exception).__name__, waiters[2].value, batches)
"""


KILLED_LEADER = """
from gevent import monkey; monkey.patch_all()
import gevent
from backend_to_api.group_commit import GroupCommit, GroupCommitTimeout

def run(items):
    gevent.sleep(0.2)
    return [item * item for item in items]

committer = GroupCommit(run)
first = gevent.spawn(committer.submit, 0)
gevent.sleep(0.01)
second, third = gevent.spawn(committer.submit, 1), gevent.spawn(committer.submit, 2)
gevent.sleep(0.25)  # the first is answered; the second now leads the batch [1, 2]
second.kill()  # as at shutdown: GreenletExit inside that round trip
fourth = gevent.spawn(committer.submit, 3)
gevent.joinall([third, fourth], timeout=5)
print(first.value, repr(third.exception), fourth.value)
"""


def test_a_killed_leader_fails_its_batch_with_an_ordinary_error_and_hands_on():
    done = subprocess.run([sys.executable, "-c", KILLED_LEADER], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "0 RuntimeError('the shared round trip was interrupted') 9", done.stdout + done.stderr


def test_a_killed_waiter_that_was_handed_the_lead_passes_it_on():
    done = subprocess.run([sys.executable, "-c", KILLED_WAITER], capture_output=True, text=True, timeout=30)
    assert done.stdout.split(" ", 3) == ["0", "Interrupted", "4", "[[0], [2]]\n"], done.stdout + done.stderr


def test_results_of_the_wrong_length_are_an_error():
    committer = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError):
        committer.submit(1)


def test_a_waiter_behind_a_hung_round_trip_gives_up_within_its_limit():
    release = threading.Event()

    def run(items):
        if items == [0]:
            release.wait(5)  # the leader's round trip hangs
        return [item * item for item in items]

    committer = GroupCommit(run, wait_limit=0.3)
    leader = threading.Thread(target=committer.submit, args=(0,))
    leader.start()
    time.sleep(0.05)
    began = time.monotonic()
    with pytest.raises(GroupCommitTimeout):
        committer.submit(1)
    assert 0.25 <= time.monotonic() - began < 1.0
    release.set()
    leader.join(5)
    assert committer.submit(2) == 4  # the waiter left the queue: nothing is stuck behind it
