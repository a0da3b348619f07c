"""`python -m serving.status`, the readiness/start-up probe of deploy/: exit 0
only while the model has an AVAILABLE version."""

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from serving import status

REPO_ROOT = Path(__file__).resolve().parents[2]


def _status(*states):
    return {"model_version_status": [
        {"version": str(v), "state": s, "status": {"error_code": "OK", "error_message": ""}}
        for v, s in states]}


@pytest.fixture
def fake_server():
    """A REST status endpoint answering what the test puts in `answers`."""
    answers = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            code, body = answers.get(self.path, (404, {"error": "not found"}))
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1], answers
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("states, ok", [
    ([(1, "AVAILABLE")], True),
    ([(1, "END"), (2, "AVAILABLE")], True),
    ([(1, "LOADING")], False),
    ([(1, "END")], False),          # failed to load: the endpoint still answers 200
    ([(1, "UNLOADING")], False),    # SIGTERM: draining
    ([], False),
])
def test_exit_status_follows_the_versions_states(fake_server, states, ok, capsys):
    port, answers = fake_server
    answers["/v1/models/retrieval"] = (200, _status(*states))
    assert status.main(["--rest_api_port", str(port)]) == (0 if ok else 1)
    out = capsys.readouterr()
    assert ("serving version" in out.out) if ok else ("no AVAILABLE version" in out.err)


def test_unknown_model_and_nothing_listening_fail(fake_server, capsys):
    port, answers = fake_server
    answers["/v1/models/retrieval"] = (200, _status((1, "AVAILABLE")))
    assert status.main(["--rest_api_port", str(port), "--model_name", "other"]) == 1
    assert "HTTP 404" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert status.main(["--rest_api_port", str(free), "--timeout_seconds", "1"]) == 1


def test_runs_as_the_probe_command_without_tensorflow(fake_server):
    """The probe is `python -m serving.status`: it must start fast, so it may
    not import TensorFlow (or anything outside the standard library)."""
    port, answers = fake_server
    answers["/v1/models/retrieval"] = (200, _status((3, "AVAILABLE")))
    code = (f"import runpy, sys; sys.argv = ['x', '--rest_api_port', '{port}'];"
            "\ntry: runpy.run_module('serving.status', run_name='__main__')"
            "\nexcept SystemExit as e: rc = e.code"
            "\nassert 'tensorflow' not in sys.modules and 'grpc' not in sys.modules;"
            " sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "version(s) 3" in result.stdout
