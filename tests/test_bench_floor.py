"""bench/framework_floor.py runs end to end: the floor app streams its frames under gunicorn and
the script reports a CPU figure per request."""
import re
import subprocess
import sys

from tests.conftest import ROOT


def test_the_framework_floor_is_measured_and_printed():
    done = subprocess.run([sys.executable, "bench/framework_floor.py", "--requests", "300", "--concurrency", "10"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    figure = re.search(r"framework floor: (\d+\.\d\d) ms of CPU per streamed request", done.stdout)
    assert figure and 0 < float(figure.group(1)) < 50, done.stdout
    assert re.search(r"take at least \d+ ms on \d+ CPUs", done.stdout), done.stdout
