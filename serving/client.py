"""``retrieval-query``: ask a retrieval-serve / tensorflow_model_server for top items.

Usage::

    retrieval-query --server localhost:8500 --user_id U42 --history i1,i7 --k 5
    retrieval-query --server localhost:8500 --users_file users.txt --k 10

Sends ``user_id`` string [B] and ``history`` string [B, L] to the
``serving_default`` signature and prints ``rank  item_id  score`` per user
(``--output_format jsonl``: one JSON object per user).

From Python::

    from serving.client import RetrievalClient
    with RetrievalClient("localhost:8500") as client:
        top = client.recommend(["U42"], [["i1", "i7"]], k=5)  # [[(item, score), ...]]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import json
import sys
from collections.abc import Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

PROG = "retrieval-query"
ITEM_IDS_OUTPUT = "item_ids"
SCORES_OUTPUT = "scores"


def build_request(
    user_ids: Sequence[str],
    histories: Sequence[Sequence[str]],
    model_name: str = "retrieval",
    signature_name: str = "serving_default",
) -> predict_pb2.PredictRequest:
    """Builds a PredictRequest; histories are right-padded with "" to one length.

    Args:
        user_ids: B user ids.
        histories: B lists of item ids (may be empty).

    Returns:
        Request with ``user_id`` string [B] and ``history`` string [B, L],
        L = longest history (0 if all are empty).
    """
    if len(user_ids) != len(histories):
        raise ValueError(
            f"got {len(user_ids)} user_ids but {len(histories)} histories; "
            "expected one history per user"
        )
    width = max((len(h) for h in histories), default=0)
    history = np.full((len(histories), width), b"", dtype=object)
    for row, items in enumerate(histories):
        history[row, : len(items)] = [item.encode("utf-8") for item in items]
    user_id = np.array([u.encode("utf-8") for u in user_ids], dtype=object)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    request.inputs["user_id"].CopyFrom(
        tf.make_tensor_proto(user_id, dtype=tf.string, shape=[len(user_ids)])
    )
    request.inputs["history"].CopyFrom(
        tf.make_tensor_proto(history, dtype=tf.string, shape=list(history.shape))
    )
    return request


def parse_response(
    response: predict_pb2.PredictResponse,
) -> list[list[tuple[str, float]]]:
    """Turns ``item_ids`` string [B, K], ``scores`` float [B, K] into B ranked lists."""
    missing = [n for n in (ITEM_IDS_OUTPUT, SCORES_OUTPUT) if n not in response.outputs]
    if missing:
        raise ValueError(
            f"response lacks output(s) {missing}; got outputs "
            f"{sorted(response.outputs)}, expected {ITEM_IDS_OUTPUT!r} and "
            f"{SCORES_OUTPUT!r}"
        )
    ids = tf.make_ndarray(response.outputs[ITEM_IDS_OUTPUT])
    scores = tf.make_ndarray(response.outputs[SCORES_OUTPUT])
    if ids.shape != scores.shape or ids.ndim != 2:
        raise ValueError(
            f"outputs have shapes {ids.shape} and {scores.shape}; "
            "expected equal [B, K] shapes"
        )
    return [
        [
            (item.decode("utf-8", errors="replace"), float(score))
            for item, score in zip(id_row, score_row, strict=True)
        ]
        for id_row, score_row in zip(ids, scores, strict=True)
    ]


def query(
    stub_or_target,
    user_ids: list[str],
    histories: list[list[str]],
    model_name: str = "retrieval",
    signature_name: str = "serving_default",
    timeout: float = 10.0,
) -> list[list[tuple[str, float]]]:
    """Queries top items for a batch of users.

    Args:
        stub_or_target: A ``PredictionServiceStub`` or a ``host:port`` string (a
            channel is opened and closed for this call).
        user_ids: B user ids.
        histories: B item-id lists to exclude/condition on.
        model_name: ``model_spec.name``.
        signature_name: ``model_spec.signature_name``.
        timeout: RPC deadline in seconds.

    Returns:
        B lists of (item_id, score), best first, as many as the model returns.

    Raises:
        grpc.RpcError: If the server is unreachable or answers an error.
    """
    request = build_request(user_ids, histories, model_name, signature_name)
    if isinstance(stub_or_target, str):
        with grpc.insecure_channel(stub_or_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(request, timeout=timeout)
    else:
        response = stub_or_target.Predict(request, timeout=timeout)
    return parse_response(response)


class RetrievalClient:
    """A reusable gRPC connection to a TF Serving-compatible retrieval model.

    Works against ``retrieval-serve`` and real ``tensorflow_model_server``.

    Args:
        target: ``host:port`` of the gRPC API.
        model_name: ``model_spec.name``.
        signature_name: ``model_spec.signature_name``.
        version: Ask for this version instead of the served default.
        timeout: RPC deadline in seconds.
        batch_size: Users per Predict call in :meth:`recommend` (keep it at or
            under the server's ``--max_batch_size``).
    """

    def __init__(
        self,
        target: str,
        model_name: str = "retrieval",
        signature_name: str = "serving_default",
        version: int | None = None,
        timeout: float = 10.0,
        batch_size: int = 256,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; expected >= 1")
        self.target = target
        self.model_name = model_name
        self.signature_name = signature_name
        self.version = version
        self.timeout = timeout
        self.batch_size = batch_size
        self._channel = grpc.insecure_channel(target)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def recommend(
        self,
        user_ids: Sequence[str],
        histories: Sequence[Sequence[str]] | None = None,
        k: int | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Top items per user, best first, in batches of ``batch_size``.

        Args:
            user_ids: B user ids.
            histories: B item-id lists (most recent last); None = no history.
            k: Keep at most this many items per user (the model's K caps it).

        Returns:
            B lists of (item_id, score).

        Raises:
            grpc.RpcError: If the server is unreachable or answers an error.
            ValueError: On mismatched inputs or a response without the outputs.
        """
        if histories is None:
            histories = [[] for _ in user_ids]
        if len(user_ids) != len(histories):
            raise ValueError(
                f"got {len(user_ids)} user_ids but {len(histories)} histories; "
                "expected one history per user"
            )
        if k is not None and k < 1:
            raise ValueError(f"k={k}; expected >= 1")
        results: list[list[tuple[str, float]]] = []
        for start in range(0, len(user_ids), self.batch_size):
            stop = start + self.batch_size
            request = build_request(
                user_ids[start:stop], histories[start:stop], self.model_name,
                self.signature_name,
            )
            if self.version is not None:
                request.model_spec.version.value = self.version
            response = self._stub.Predict(request, timeout=self.timeout)
            results.extend(parse_response(response))
        return [row[:k] for row in results] if k is not None else results

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RetrievalClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_users_file(path: str) -> tuple[list[str], list[list[str]]]:
    """Reads ``user_id [item,item,...]`` lines (whitespace between the two parts).

    Blank lines and lines starting with ``#`` are skipped.

    Raises:
        ValueError: Naming the file and line of a malformed line.
    """
    users, histories = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) > 2:
                raise ValueError(
                    f"{path}:{number}: {line!r} has {len(parts)} fields; expected "
                    "'user_id' or 'user_id item,item,...' (no spaces in the history)"
                )
            users.append(parts[0])
            history = parts[1].split(",") if len(parts) == 2 else []
            histories.append([item for item in history if item])
    if not users:
        raise ValueError(f"{path} holds no users; expected 'user_id [item,item,...]' lines")
    return users, histories


def read_catalog(path: str) -> dict[str, str]:
    """item_id -> title from a MovieTweetings ``movies.dat`` (``id::title::genres``)
    or a CSV with ``item_id`` and ``title`` columns."""
    import csv

    titles: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        if path.endswith(".csv"):
            for row in csv.DictReader(f):
                if "item_id" not in row or "title" not in row:
                    raise ValueError(f"catalog {path!r}: expected item_id and title columns")
                titles[row["item_id"]] = row["title"]
        else:
            for line in f:
                fields = line.rstrip("\n").split("::")
                if len(fields) >= 2:
                    titles[fields[0]] = fields[1]
    return titles


def format_table(ranked: Sequence[tuple[str, float]],
                 titles: dict[str, str] | None = None) -> str:
    """Formats ``rank  item_id  score [title]`` rows with aligned columns."""
    id_width = max([len("item_id")] + [len(item) for item, _ in ranked])
    header = f"{'rank':>4}  {'item_id':<{id_width}}  {'score':>9}"
    lines = [header + ("  title" if titles is not None else "")]
    for rank, (item, score) in enumerate(ranked, start=1):
        line = f"{rank:>4}  {item:<{id_width}}  {score:9.4f}"
        if titles is not None:
            line += f"  {titles.get(item, '?')}"
        lines.append(line)
    return "\n".join(lines)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{value} is invalid; expected an integer >= 1"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """Returns the ``retrieval-query`` argument parser."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server", default="localhost:8500", help="host:port of the server"
    )
    users = parser.add_mutually_exclusive_group(required=True)
    users.add_argument("--user_id", help="user to recommend for")
    users.add_argument(
        "--users_file",
        help="file of 'user_id [item,item,...]' lines: one batch of users",
    )
    parser.add_argument(
        "--history",
        default="",
        help="comma-separated item ids the user interacted with (with --user_id)",
    )
    parser.add_argument("--k", type=_positive_int, default=10, help="items per user")
    parser.add_argument(
        "--batch_size", type=_positive_int, default=256, help="users per Predict call"
    )
    parser.add_argument(
        "--output_format", choices=("table", "jsonl"), default="table",
        help="table: a ranked table per user; jsonl: one JSON object per user",
    )
    parser.add_argument("--model_name", default="retrieval")
    parser.add_argument("--catalog", default=None,
                        help="item catalog to print titles from (movies.dat or CSV)")
    parser.add_argument("--signature_name", default="serving_default")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="RPC deadline, seconds"
    )
    return parser


def _print_results(users, results, k, output_format, titles) -> None:
    for user, ranked in zip(users, results, strict=True):
        if output_format == "jsonl":
            print(json.dumps({"user_id": user, "items": [
                {"item_id": item, "score": score} for item, score in ranked[:k]]}))
            continue
        if len(users) > 1:
            print(f"user {user}")
        print(format_table(ranked[:k], titles))
        if len(users) > 1:
            print()


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``retrieval-query``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.users_file:
        if args.history:
            parser.error("--history applies to --user_id; put histories in --users_file")
        try:
            users, histories = read_users_file(args.users_file)
        except (OSError, ValueError) as err:
            print(f"{PROG}: error: {err}", file=sys.stderr)
            return 2
    else:
        users = [args.user_id]
        histories = [[item.strip() for item in args.history.split(",") if item.strip()]]
    try:
        with RetrievalClient(
            args.server, args.model_name, args.signature_name, timeout=args.timeout,
            batch_size=args.batch_size,
        ) as client:
            results = client.recommend(users, histories)
    except grpc.RpcError as err:
        print(
            f"{PROG}: error: request to {args.server} failed: "
            f"{err.code().name}: {err.details()}",
            file=sys.stderr,
        )
        return 1
    except ValueError as err:  # a response without the expected outputs
        print(
            f"{PROG}: error: unexpected response from {args.server}: {err}",
            file=sys.stderr,
        )
        return 1
    returned = min((len(r) for r in results), default=0)
    if args.k > returned and args.output_format == "table":
        print(
            f"note: requested --k={args.k} but the model returns only "
            f"{returned} items"
        )
    titles = read_catalog(args.catalog) if args.catalog else None
    _print_results(users, results, args.k, args.output_format, titles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
