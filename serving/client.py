"""``retrieval-query``: ask a retrieval-serve / tensorflow_model_server for top items.

Usage::

    retrieval-query --server localhost:8500 --user_id U42 --history i1,i7 --k 5
    retrieval-query --server localhost:8500 --users_file users.txt --k 10
    retrieval-query --user_id U42 --feature seconds_since_previous_click=300 \
        --feature device=phone
    retrieval-query --related_to i7 --k 5

A model of merged recall channels also returns ``channels`` string [B, K],
the channel behind each item, printed as a column; ``--related_to ITEM``
asks its ``related_items`` signature (``item_id`` string [B]) for the items
related to one item.

Sends ``user_id`` string [B] and ``history`` string [B, L] to the
``serving_default`` signature and prints ``rank  item_id  score`` per user
(``--output_format jsonl``: one JSON object per user). A model trained with
query features (recency, user/context features; the export's
``assets.extra/retrieval_export.json`` lists its inputs) also needs each of
them: ``--feature NAME=VALUE`` (VALUE read as JSON when it parses: 300 is an
int, 0.5 a float, ["a","b"] a list, anything else a string), or a
``features`` object per line of a JSONL users file.

From Python::

    from serving.client import RetrievalClient
    with RetrievalClient("localhost:8500") as client:
        top = client.recommend(["U42"], [["i1", "i7"]], k=5)  # [[(item, score), ...]]
        top = client.recommend(["U42"], [["i1"]], features={"device": ["phone"]})
        top = client.recommend(["U42"], [["i1"]], with_channels=True)  # (item, score, channel)
        related = client.related(["i7"], k=5)  # [[(item, score), ...]]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import json
import sys
from collections.abc import Mapping, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

PROG = "retrieval-query"
ITEM_IDS_OUTPUT = "item_ids"
SCORES_OUTPUT = "scores"
CHANNELS_OUTPUT = "channels"
RELATED_SIGNATURE = "related_items"


def feature_tensor(name: str, values: Sequence) -> tf.compat.v1.TensorProto:
    """One extra query input from B Python values: str -> string [B], int ->
    int64 [B], float -> float32 [B], lists of str -> string [B, L] padded with "".

    Raises:
        ValueError: naming the feature, when the values mix kinds.
    """
    kinds = {"list" if isinstance(v, (list, tuple)) else "bool" if isinstance(v, bool)
             else "float" if isinstance(v, float) else type(v).__name__ for v in values}
    if kinds == {"float", "int"}:
        kinds = {"float"}
    if len(kinds) != 1 or kinds - {"str", "int", "float", "list"}:
        raise ValueError(
            f"feature {name!r}: values {list(values)[:5]} are of kinds {sorted(kinds)}; "
            "expected all strings, all ints, all numbers or all lists of strings"
        )
    kind = kinds.pop()
    if kind == "list":
        width = max((len(v) for v in values), default=0)
        array = np.full((len(values), width), b"", dtype=object)
        for row, tokens in enumerate(values):
            array[row, : len(tokens)] = [str(t).encode("utf-8") for t in tokens]
        return tf.make_tensor_proto(array, dtype=tf.string, shape=list(array.shape))
    if kind == "str":
        array = np.array([v.encode("utf-8") for v in values], dtype=object)
        return tf.make_tensor_proto(array, dtype=tf.string, shape=[len(values)])
    dtype = tf.int64 if kind == "int" else tf.float32
    return tf.make_tensor_proto(np.array(values, dtype.as_numpy_dtype), dtype=dtype)


def build_request(
    user_ids: Sequence[str],
    histories: Sequence[Sequence[str]],
    model_name: str = "retrieval",
    signature_name: str = "serving_default",
    features: Mapping[str, Sequence] | None = None,
) -> predict_pb2.PredictRequest:
    """Builds a PredictRequest; histories are right-padded with "" to one length.

    Args:
        user_ids: B user ids.
        histories: B lists of item ids (may be empty).
        features: the model's extra query inputs, name -> B values
            (see `feature_tensor`).

    Returns:
        Request with ``user_id`` string [B] and ``history`` string [B, L],
        L = longest history (0 if all are empty), plus one input per feature.
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
    for name, values in (features or {}).items():
        if name in ("user_id", "history"):
            raise ValueError(f"feature {name!r}: pass it as user_ids/histories")
        if len(values) != len(user_ids):
            raise ValueError(
                f"feature {name!r}: got {len(values)} values for {len(user_ids)} users; "
                "expected one per user"
            )
        request.inputs[name].CopyFrom(feature_tensor(name, values))
    return request


def parse_response(
    response: predict_pb2.PredictResponse, with_channels: bool | None = False,
) -> list[list[tuple]]:
    """Turns ``item_ids`` string [B, K], ``scores`` float [B, K] into B ranked
    lists of (item, score); with `with_channels`, (item, score, channel) from
    the ``channels`` output too (None: when the response has it)."""
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
    ranked = [
        [
            (item.decode("utf-8", errors="replace"), float(score))
            for item, score in zip(id_row, score_row, strict=True)
        ]
        for id_row, score_row in zip(ids, scores, strict=True)
    ]
    if with_channels is None:
        with_channels = CHANNELS_OUTPUT in response.outputs
    if not with_channels:
        return ranked
    if CHANNELS_OUTPUT not in response.outputs:
        raise ValueError(
            f"response lacks output {CHANNELS_OUTPUT!r} (a model without recall channels); "
            f"got outputs {sorted(response.outputs)}"
        )
    channels = tf.make_ndarray(response.outputs[CHANNELS_OUTPUT])
    return [
        [(item, score, channel.decode("utf-8", errors="replace"))
         for (item, score), channel in zip(row, channel_row, strict=True)]
        for row, channel_row in zip(ranked, channels, strict=True)
    ]


def query(
    stub_or_target,
    user_ids: list[str],
    histories: list[list[str]],
    model_name: str = "retrieval",
    signature_name: str = "serving_default",
    timeout: float = 10.0,
    features: Mapping[str, Sequence] | None = None,
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
        features: the model's extra query inputs, name -> B values.

    Returns:
        B lists of (item_id, score), best first, as many as the model returns.

    Raises:
        grpc.RpcError: If the server is unreachable or answers an error.
    """
    request = build_request(user_ids, histories, model_name, signature_name, features)
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
        features: Mapping[str, Sequence] | None = None,
        with_channels: bool | None = False,
    ) -> list[list[tuple]]:
        """Top items per user, best first, in batches of ``batch_size``.

        Args:
            user_ids: B user ids.
            histories: B item-id lists (most recent last); None = no history.
            k: Keep at most this many items per user (the model's K caps it).
            features: the model's extra query inputs, name -> B values.
            with_channels: also return each item's recall channel (a model
                of merged channels; None: when the model answers it).

        Returns:
            B lists of (item_id, score), or (item_id, score, channel).

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
                {name: values[start:stop] for name, values in (features or {}).items()},
            )
            if self.version is not None:
                request.model_spec.version.value = self.version
            response = self._stub.Predict(request, timeout=self.timeout)
            results.extend(parse_response(response, with_channels))
        return [row[:k] for row in results] if k is not None else results

    def related(self, item_ids: Sequence[str], k: int | None = None
                ) -> list[list[tuple[str, float]]]:
        """Items related to each of `item_ids` (the ``related_items``
        signature of a model of merged recall channels), best first."""
        if k is not None and k < 1:
            raise ValueError(f"k={k}; expected >= 1")
        results: list[list[tuple[str, float]]] = []
        for start in range(0, len(item_ids), self.batch_size):
            part = np.array([i.encode("utf-8") for i in item_ids[start:start + self.batch_size]],
                            dtype=object)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = self.model_name
            request.model_spec.signature_name = RELATED_SIGNATURE
            if self.version is not None:
                request.model_spec.version.value = self.version
            request.inputs["item_id"].CopyFrom(
                tf.make_tensor_proto(part, dtype=tf.string, shape=[len(part)]))
            results.extend(parse_response(self._stub.Predict(request, timeout=self.timeout)))
        return [row[:k] for row in results] if k is not None else results

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RetrievalClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_users_file(path: str) -> tuple[list[str], list[list[str]], dict[str, list]]:
    """Reads ``user_id [item,item,...]`` lines (whitespace between the two parts)
    or JSON lines ``{"user_id": ..., "history": [...], "features": {...}}``.

    Blank lines and lines starting with ``#`` are skipped.

    Returns:
        (users, histories, features: name -> one value per user).

    Raises:
        ValueError: Naming the file and line of a malformed line, or a
            feature some lines give and others do not.
    """
    users, histories, rows = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("{"):
                user, history, features = _json_user(path, number, line)
            else:
                parts = line.split()
                if len(parts) > 2:
                    raise ValueError(
                        f"{path}:{number}: {line!r} has {len(parts)} fields; expected "
                        "'user_id' or 'user_id item,item,...' (no spaces in the history)"
                    )
                user, features = parts[0], {}
                history = parts[1].split(",") if len(parts) == 2 else []
            users.append(user)
            histories.append([item for item in history if item])
            rows.append((number, features))
    if not users:
        raise ValueError(f"{path} holds no users; expected 'user_id [item,item,...]' lines")
    names = sorted({name for _, features in rows for name in features})
    for number, features in rows:
        missing = [name for name in names if name not in features]
        if missing:
            raise ValueError(f"{path}:{number}: lacks feature(s) {missing} other lines give; "
                             "expected the same features on every line")
    return users, histories, {name: [f[name] for _, f in rows] for name in names}


def _json_user(path: str, number: int, line: str) -> tuple[str, list[str], dict]:
    expected = ('expected {"user_id": "U1", "history": ["i1", ...], '
                '"features": {"name": value, ...}} (history and features optional)')
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{number}: not valid JSON ({err.msg}); {expected}") from None
    if not isinstance(row, dict):
        raise ValueError(f"{path}:{number}: {line[:200]!r}: {expected}")
    user, history = row.get("user_id"), row.get("history", [])
    features = row.get("features", {})
    if (not isinstance(user, str) or not isinstance(history, list)
            or not all(isinstance(i, str) for i in history) or not isinstance(features, dict)
            or set(row) - {"user_id", "history", "features"}):
        raise ValueError(f"{path}:{number}: {line[:200]!r}: {expected}")
    return user, history, features


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


def format_table(ranked: Sequence[tuple],
                 titles: dict[str, str] | None = None) -> str:
    """Formats ``rank  item_id  score [channel] [title]`` rows with aligned
    columns (the channel when the rows are (item, score, channel))."""
    id_width = max([len("item_id")] + [len(row[0]) for row in ranked])
    with_channel = bool(ranked) and len(ranked[0]) == 3
    channel_width = max([len("channel")] + [len(row[2]) for row in ranked]) if with_channel else 0
    header = f"{'rank':>4}  {'item_id':<{id_width}}  {'score':>9}"
    if with_channel:
        header += f"  {'channel':<{channel_width}}"
    lines = [header + ("  title" if titles is not None else "")]
    for rank, (item, score, *channel) in enumerate(ranked, start=1):
        line = f"{rank:>4}  {item:<{id_width}}  {score:9.4f}"
        if with_channel:
            line += f"  {channel[0]:<{channel_width}}"
        if titles is not None:
            line += f"  {titles.get(item, '?')}"
        lines.append(line)
    return "\n".join(lines)


def _feature_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


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
    users.add_argument("--related_to", metavar="ITEM_ID",
                       help="an item: ask the related_items signature for items related to it")
    users.add_argument(
        "--users_file",
        help="file of 'user_id [item,item,...]' lines: one batch of users",
    )
    parser.add_argument(
        "--history",
        default="",
        help="comma-separated item ids the user interacted with (with --user_id)",
    )
    parser.add_argument(
        "--feature", action="append", default=[], metavar="NAME=VALUE",
        help="an extra query input of the model (with --user_id; repeatable); VALUE is "
             "read as JSON when it parses (300, 0.5, [\"a\",\"b\"]), else as a string",
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
                {"item_id": item, "score": score, **({"channel": rest[0]} if rest else {})}
                for item, score, *rest in ranked[:k]]}))
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
    if args.related_to and (args.history or args.feature):
        parser.error("--history and --feature apply to --user_id, not --related_to")
    if args.users_file:
        if args.history:
            parser.error("--history applies to --user_id; put histories in --users_file")
        if args.feature:
            parser.error("--feature applies to --user_id; put features in --users_file")
        try:
            users, histories, features = read_users_file(args.users_file)
        except (OSError, ValueError) as err:
            print(f"{PROG}: error: {err}", file=sys.stderr)
            return 2
    elif args.related_to:
        users, histories, features = [args.related_to], [], {}
    else:
        users = [args.user_id]
        histories = [[item.strip() for item in args.history.split(",") if item.strip()]]
        features = {}
        for assignment in args.feature:
            name, sep, text = assignment.partition("=")
            if not sep or not name:
                parser.error(f"--feature {assignment!r}: expected NAME=VALUE")
            features[name] = [_feature_value(text)]
    try:
        with RetrievalClient(
            args.server, args.model_name, args.signature_name, timeout=args.timeout,
            batch_size=args.batch_size,
        ) as client:
            if args.related_to:
                results = client.related(users)
            else:
                results = client.recommend(users, histories, features=features,
                                           with_channels=None)
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
