"""The hiding queue (conversation_hider.py): a fixed number of threads whatever the number of
jobs, a bounded queue whose overflow is dropped with a warning, and a failed job that does not
stop the next. (End to end, the PATCH itself: test_deployment_e2e.)"""
import threading
import time

from backend_to_api.conversation_hider import ConversationHider


def wait_for(condition, limit=5.0):
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_burst_of_jobs_runs_on_a_fixed_number_of_threads_and_overflow_is_dropped(caplog):
    release, running, done = threading.Event(), [], []

    def hide(job):
        running.append(job)
        release.wait(5)
        done.append(job)

    hider = ConversationHider(hide, threads=2, capacity=3)
    before = threading.active_count()
    accepted = [hider.submit(n) for n in range(2)]
    assert wait_for(lambda: len(running) == 2)  # both threads busy; the next jobs queue
    accepted += [hider.submit(n) for n in range(2, 7)]
    assert accepted == [True] * 5 + [False] * 2
    assert threading.active_count() == before + 2
    assert "stays visible" in caplog.text
    release.set()
    assert wait_for(lambda: len(done) == 5)
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert threading.active_count() == before + 2  # the threads stay for the next jobs


def test_a_failing_job_does_not_stop_the_next(caplog):
    done = []

    def hide(job):
        if job == "bad":
            raise RuntimeError("upstream said no")
        done.append(job)

    hider = ConversationHider(hide, threads=1)
    hider.submit("bad")
    hider.submit("good")
    assert wait_for(lambda: done == ["good"])
    assert "hiding a conversation failed" in caplog.text
