"""jsonschema (~11 MB per process with what it brings) is loaded only by a request that has a schema
to check (json_schema.py): a worker that never sees tools or a response format never carries it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import pkgutil, sys
import backend_to_api
for module in pkgutil.walk_packages(backend_to_api.__path__, "backend_to_api."):
    __import__(module.name)
print(sorted(name for name in ("jsonschema", "referencing", "rpds") if name in sys.modules))
from backend_to_api.tool_calls.toolset import parse_chat_tools
parse_chat_tools({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]})
print("jsonschema" in sys.modules)
"""


def test_every_module_imports_without_jsonschema_until_a_schema_is_checked():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "True"]
