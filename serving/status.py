"""Exit 0 only when a model has a version that serves: a probe for Kubernetes.

    python -m serving.status --rest_api_port 8501 --model_name retrieval

Asks the REST status endpoint ``GET /v1/models/<name>`` and exits 0 if some
version's state is AVAILABLE, 1 otherwise (not listening, an HTTP error,
every version still loading, failed (END) or UNLOADING during shutdown),
printing one line saying why. That endpoint answers 200 whatever the
versions' states, so an ``httpGet`` probe on it only shows the process
answers; this check is what deploy/ uses for readiness and start-up.

Standard library only (no TensorFlow import), so a probe costs a Python
start-up, not a model server's.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

SERVING_STATE = "AVAILABLE"


def serving_versions(answer: dict) -> list[str]:
    """Versions in a GetModelStatus JSON answer whose state is AVAILABLE."""
    return [str(s.get("version")) for s in answer.get("model_version_status", [])
            if s.get("state") == SERVING_STATE]


def check(host: str, port: int, model_name: str, timeout: float) -> tuple[bool, str]:
    """-> (a version serves, one line saying what was seen)."""
    url = f"http://{host}:{port}/v1/models/{model_name}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            answer = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        return False, f"{url}: HTTP {error.code}"
    except (OSError, ValueError) as error:  # refused, timed out, not JSON
        return False, f"{url}: {error}"
    versions = serving_versions(answer)
    if versions:
        return True, f"model {model_name!r} serving version(s) {', '.join(versions)}"
    states = [f"{s.get('version')}={s.get('state')}"
              for s in answer.get("model_version_status", [])]
    return False, f"model {model_name!r}: no AVAILABLE version ({', '.join(states) or 'none'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.status",
        description="Exit 0 iff the model has an AVAILABLE version (REST status endpoint).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rest_api_port", type=int, default=8501)
    parser.add_argument("--model_name", default="retrieval")
    parser.add_argument("--timeout_seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    ok, line = check(args.host, args.rest_api_port, args.model_name, args.timeout_seconds)
    print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
