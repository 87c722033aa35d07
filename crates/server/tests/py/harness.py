"""Start `ferrite serve` on a free loopback port, talk raw HTTP to it, run test functions.

Environment: FERRITE_BIN (the built binary), FERRITE_MODEL (SmolLM2 GGUF), FERRITE_GEMMA
(optional: Gemma 3 270M GGUF, a model without a chat template). Traffic goes to 127.0.0.1 only;
every wait is bounded in time.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback

BIN = os.environ.get("FERRITE_BIN", "")
MODEL = os.environ.get("FERRITE_MODEL", "")
GEMMA = os.environ.get("FERRITE_GEMMA", "")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, *args, model=None, timeout=60):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [BIN, "serve", model or MODEL, "--host", "127.0.0.1", "--port", str(self.port), *args]
        self.log = open(f"/tmp/ferrite-serve-{self.port}.log", "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.logs()}")
            try:
                status, _, _ = self.request("GET", "/health", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError(f"server not healthy after {timeout} s: {self.logs()}")

    def logs(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def request(self, method, path, body=None, headers=None, timeout=120):
        """(status, headers dict, body bytes). `body` may be bytes or a JSON-able object."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, data

    def json(self, method, path, body=None, headers=None):
        status, _, data = self.request(method, path, body, headers)
        return status, json.loads(data) if data else None

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, timeout=20):
        """SIGTERM; the server must exit 0 (graceful shutdown)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise AssertionError(f"server did not exit within {timeout} s of SIGTERM")
        rc = self.proc.returncode
        assert rc == 0, f"server exited with {rc} after SIGTERM: {self.logs()}"


def sse_stream(port, path, body, timeout=120):
    """Open a streaming request on a raw socket; returns (sock, file). Read with sse_events."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    data = json.dumps(body).encode()
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data
    )
    f = s.makefile("rb")
    status = f.readline()
    while f.readline() not in (b"\r\n", b""):
        pass
    return s, f, int(status.split()[1])


def sse_events(f):
    """Yield the `data:` payloads of a chunked SSE body (raw socket)."""
    buf = b""
    while True:
        size_line = f.readline()
        if not size_line:
            return
        size = int(size_line.strip() or b"0", 16)
        if size == 0:
            return
        buf += f.read(size)
        f.readline()
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                if line.startswith(b"data:"):
                    yield line[5:].strip().decode()


def run_tests(tests):
    """Run each function; print a closing 'N passed, N failed' line; exit 1 on any failure."""
    passed = failed = 0
    for t in tests:
        t0 = time.time()
        try:
            t()
            passed += 1
            print(f"ok   {t.__name__} ({time.time() - t0:.1f} s)", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {t.__name__} ({time.time() - t0:.1f} s)", flush=True)
            traceback.print_exc()
            sys.stdout.flush()
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)
