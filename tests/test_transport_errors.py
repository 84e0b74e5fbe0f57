"""wrap_transport_errors with real failures: a process that has used up its open files gets our
503 whichever way it connects (requests, urllib3, a plain socket); a refused port stays a 502."""
import json
import subprocess
import sys

from tests.conftest import ROOT, free_port

SCRIPT = """
import json, resource, socket, sys
import requests, urllib3
from backend_to_api.errors import ApiError
from backend_to_api.upstream.errors import wrap_transport_errors

port = int(sys.argv[1])
url = f"http://127.0.0.1:{port}/"
session, pool = requests.Session(), urllib3.PoolManager(retries=False)
ways = {
    "requests": lambda: session.get(url, timeout=2),
    "urllib3": lambda: pool.request("GET", url, timeout=2),
    "socket": lambda: socket.create_connection(("127.0.0.1", port), timeout=2),
}

def outcome(call):
    try:
        with wrap_transport_errors("test"):
            call()
    except ApiError as exc:
        return [exc.status, exc.code]
    return "no error"

answers = {"refused " + name: outcome(call) for name, call in ways.items()}
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = []
try:
    while True:
        held.append(open("/dev/null"))
except OSError:
    pass  # every descriptor is in use now
answers.update({"full " + name: outcome(call) for name, call in ways.items()})
print(json.dumps(answers))
"""


def test_out_of_open_files_is_503_and_a_refused_port_502():
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(free_port())], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    answers = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else done.stderr
    for name in ("requests", "urllib3", "socket"):
        assert answers["refused " + name] == [502, "upstream_unreachable"], answers
        assert answers["full " + name] == [503, "server_overloaded"], answers
