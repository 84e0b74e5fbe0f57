"""bench/profile_proxy.py's summary of py-spy's raw output (py-spy itself is not needed here)."""
from bench.profile_proxy import read_samples, stage_of, summary

MASTER = 'process 10:"python main.py"'
WORKER = MASTER + ';process 11:"python main.py"'
SERVE = "_handle_and_close_when_done (gevent/baseserver.py:34);GeventWorker.handle (gunicorn/workers/ggevent.py:120)"


def write_raw(tmp_path, lines):
    path = tmp_path / "raw.txt"
    path.write_text("".join(f"{stack} {count}\n" for stack, count in lines))
    return str(path)


def test_worker_samples_are_split_by_stage_and_start_up_is_left_out(tmp_path):
    path = write_raw(tmp_path, [
        (f"{WORKER};{SERVE};ReplyStream._interpret (backend_to_api/upstream/reply.py:145);"
         "_parse_json (backend_to_api/sse/interpret.py:223)", 6),
        (f"{WORKER};{SERVE};RateLimiter.acquire (backend_to_api/limits.py:41)", 3),
        (f"{WORKER}", 1),                                              # no Python frame: native
        (f"{WORKER};Worker.load_wsgi (gunicorn/workers/base.py:150)", 50),  # start-up: left out
        (f"{MASTER};Arbiter.run (gunicorn/arbiter.py:247)", 40),       # the master: left out
    ])
    samples = read_samples(path)
    assert sum(count for _, count in samples) == 10
    assert [stage_of(frames) for frames, _ in samples] == [
        "interpreting events", "rate limit (Redis)", "native code (no Python frame)"]
    text = summary(samples, top=2)
    assert "10 worker samples" in text
    assert " 60.0%  interpreting events" in text and " 30.0%  rate limit (Redis)" in text
    assert " 60.0%  _parse_json (backend_to_api/sse/interpret.py:223)" in text


def test_an_empty_profile_says_so(tmp_path):
    assert summary(read_samples(write_raw(tmp_path, [])), top=5) == "profile: no worker samples"
