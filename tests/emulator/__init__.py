"""Emulated ChatGPT backend-api upstream: a test double served over real HTTP.

Run it with ``python -m tests.emulator --host 127.0.0.1 --port N``. This file stays free of
imports on purpose: ``__main__`` must monkey-patch with gevent before anything imports
``threading`` or ``socket``, and Python imports this package first.
"""
