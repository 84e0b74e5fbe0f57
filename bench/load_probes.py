"""Keep-alive and client-disconnect probes, run beside the proxy phase of bench_streams.py.

The streams of the benchmark never go silent and never leave, so they cannot show whether the
proxy still keeps a silent stream alive and still lets go of an abandoned upstream while it is
saturated. These few extra streams do, in the same run and under the same load:

  keep-alive   the upstream sends the first half of the text, is silent for `silence` seconds
               (no pings), then sends the rest. The proxy must send ": keep-alive" comments in the
               silence (every keep_alive_interval, 5 s) and then the exact text and [DONE].
  disconnect   the upstream stalls after two events (pinging) for 30 s; the client reads the first
               token and closes. The emulator records when its stream ended and why: the proxy must
               close the upstream (closed_early) within a few seconds of the client leaving.

Each probe uses its own API key, so the emulator's stream record (its `subject`, the refresh token
the access token was minted from) says which probe it belongs to.
"""
from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from typing import List, Optional

import gevent

HOST = "127.0.0.1"
TIMEOUT = 60.0


@dataclass
class Probe:
    kind: str
    key: str
    ok: bool = False
    error: str = ""
    first_token: Optional[float] = None   # time.time() of the first content
    keep_alives: List[float] = field(default_factory=list)  # time.time() of each ": keep-alive"
    closed_at: Optional[float] = None     # disconnect probes: when the client closed


def _open(port: int, key: str, content: str):
    connection = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": content}]})
    connection.request("POST", "/v1/chat/completions", body=body.encode(),
                       headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    return connection, connection.getresponse()


def _lines(response):
    """SSE lines as they arrive (comments included)."""
    buffer = b""
    while True:
        chunk = response.read1(65536)
        if not chunk:
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from lines


def _content(line: bytes) -> Optional[str]:
    if not line.startswith(b"data: {"):
        return None
    payload = json.loads(line[6:])
    if "error" in payload:
        raise ValueError("error frame: " + json.dumps(payload["error"])[:100])
    choices = payload.get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content")


def keep_alive_probe(port: int, probe: Probe, text: str, silence: float) -> None:
    half = len(text) // 2
    content = json.dumps({"emu": "text", "text": text, "chunk": half, "interval": silence})
    connection, response = _open(port, probe.key, content)
    got, done = "", False
    try:
        for line in _lines(response):
            if line.startswith(b": keep-alive"):
                probe.keep_alives.append(time.time())
            elif line == b"data: [DONE]":
                done = True
            else:
                piece = _content(line)
                if piece:
                    probe.first_token = probe.first_token or time.time()
                    got += piece
    finally:
        connection.close()
    wanted = [t for t in probe.keep_alives if probe.first_token and t > probe.first_token]
    probe.ok = done and got == text and bool(wanted)
    probe.error = "" if probe.ok else f"done={done} text {len(got)}/{len(text)} keep-alives={len(wanted)}"


def disconnect_probe(port: int, probe: Probe) -> None:
    content = json.dumps({"emu": "hang", "text": "abcdefghijkl", "chunk": 3, "after_chunks": 2, "hang": 30})
    connection, response = _open(port, probe.key, content)
    try:
        for line in _lines(response):
            if _content(line):
                probe.first_token = time.time()
                break
    finally:
        probe.closed_at = time.time()
        connection.close()
    probe.ok = probe.first_token is not None
    probe.error = "" if probe.ok else "no first token"


def _guarded(job, probe: Probe, *args) -> None:
    try:
        with gevent.Timeout(TIMEOUT * 2):
            job(*args)
    except BaseException as exc:  # noqa: BLE001: a probe failure is a result, not a crash
        probe.ok, probe.error = False, f"{exc.__class__.__name__}: {str(exc)[:80]}"


class ProbeRun:
    """Starts the probes (after `delay` s, so they meet the load) and judges them at the end."""

    def __init__(self, port: int, count: int, silence: float, delay: float, run_id: str) -> None:
        self.silence = silence
        self.keep = [Probe("keep-alive", f"rt-probe-keep-{run_id}-{i}") for i in range(count)]
        self.leave = [Probe("disconnect", f"rt-probe-leave-{run_id}-{i}") for i in range(count)]
        text = "Grüße 世界 🌍 keep me alive " * 4
        self._greenlets = [gevent.spawn_later(delay, _guarded, keep_alive_probe, p, port, p, text, silence)
                           for p in self.keep]
        self._greenlets += [gevent.spawn_later(delay, _guarded, disconnect_probe, p, port, p) for p in self.leave]

    def finish(self, emulator_streams) -> "ProbeReport":
        gevent.joinall(self._greenlets, timeout=TIMEOUT * 2)
        time.sleep(3)  # let the last upstream closes land in the emulator's records
        records = {s.get("subject"): s for s in emulator_streams()}
        return ProbeReport(self.keep, self.leave, records, self.silence)


@dataclass
class ProbeReport:
    keep: List[Probe]
    leave: List[Probe]
    records: dict
    silence: float

    def keep_alive_ok(self) -> int:
        return sum(p.ok for p in self.keep)

    def first_keep_alive_delays(self) -> List[float]:
        return [min(t for t in p.keep_alives if t > p.first_token) - p.first_token
                for p in self.keep if p.ok]

    def upstream_close_delays(self) -> List[Optional[float]]:
        """Per disconnect probe: seconds from the client closing to the emulator's stream ending
        with client_closed (None: it did not, or ended otherwise)."""
        delays = []
        for probe in self.leave:
            record = self.records.get(probe.key)
            if probe.ok and record and record.get("closed_early") and record.get("ended"):
                delays.append(record["ended"] - probe.closed_at)
            else:
                delays.append(None)
        return delays

    def all_ok(self) -> bool:
        return (self.keep_alive_ok() == len(self.keep)
                and all(d is not None and d < 3.0 for d in self.upstream_close_delays()))

    def line(self) -> str:
        delays = self.first_keep_alive_delays()
        closes = self.upstream_close_delays()
        good = sorted(d for d in closes if d is not None)
        failures = [p.error for p in self.keep + self.leave if p.error][:2]
        return (f"probes    keep-alive ok={self.keep_alive_ok()}/{len(self.keep)} (silence {self.silence:.0f}s; "
                f"first keep-alive after {min(delays, default=float('nan')):.2f}-{max(delays, default=float('nan')):.2f}s)"
                f"  disconnect: upstream closed {len(good)}/{len(closes)}"
                + (f" after {good[len(good) // 2]:.2f}s p50, {good[-1]:.2f}s max" if good else "")
                + (f"\n          failures: {'; '.join(failures)}" if failures else ""))
