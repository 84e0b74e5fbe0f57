"""bench/bench_streams.py end to end with a handful of streams: every phase runs against the real
services, the replies are judged exact, and the soak rounds report the proxy's RSS."""
import re
import subprocess
import sys

from tests.conftest import ROOT


def test_a_small_benchmark_run_with_soak_rounds():
    done = subprocess.run(
        [sys.executable, "bench/bench_streams.py", "--streams", "30", "--events", "3", "--spacing", "0.01",
         "--nonstream", "5", "--probes", "1", "--soak", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    assert re.search(r"^proxy +ok=30 failed=0", out, re.M) and re.search(r"^nonstream ok=5 failed=0", out, re.M)
    assert "=== verdict: ALL PROXY REPLIES EXACT" in out
    assert re.search(r"keep-alive ok=1/1", out) and re.search(r"disconnect: upstream closed 1/1", out)
    rounds = re.findall(r"^soak +round (\d)/2: ok=30 failed=0 .* proxy rss after (\d+)MB", out, re.M)
    assert [number for number, _ in rounds] == ["1", "2"] and all(int(rss) > 50 for _, rss in rounds), out
    assert re.search(r"^soak +60 more streams: proxy rss \d+MB after the first round", out, re.M), out



def test_replies_last_two_seconds_unless_told_otherwise():
    """Issue #4's replies are 2 s of upstream events: 20 at 100 ms spacing, 40 at 50 ms. (In a
    subprocess: bench_streams monkey-patches on import.)"""
    code = (
        "import sys; sys.path.insert(0, 'bench'); import bench_streams as b\n"
        "for argv in ([], ['--spacing', '0.05'], ['--spacing', '0.05', '--duration', '1'],"
        " ['--spacing', '0.05', '--events', '3']):\n"
        "    print(b.parse_args(argv).events)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["20", "40", "20", "3"], done.stdout + done.stderr
