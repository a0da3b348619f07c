"""Running the Trainer's `run_fn` as a tf.distribute cluster of localhost processes.

`python -m tests.models.distributed ROLE ARGS_JSON` is one cluster task:
`ps` and `worker` tasks of a parameter-server cluster serve (a
`tf.distribute.Server`) until killed; a `train` task calls `run_fn` as the TFX
Trainer would, with TF_CONFIG (set by the caller) naming its place in the
cluster. The helpers below write tiny data with structure a model can learn,
start the tasks and score an exported towers model.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import types

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GROUPS, ITEMS_PER_GROUP, USERS_PER_GROUP, CLICKS_PER_USER = 4, 8, 10, 6


def write_grouped_data(root) -> dict:
    """Users in 4 groups, each clicking its group's 8 items once in random
    order: 40 users x 6 clicks of training examples, every user's last 2
    clicks as held-out eval examples (histories continue), and VocabStats
    files. A model that learns the groups ranks an eval click among its
    group's 2 or 1 unseen items (recall@5 near 1); popularity cannot (every
    item has about as many clicks)."""
    import tensorflow as tf

    from clicklog.formats import Click
    from components.click_example_gen.examples import to_example
    from models import vocab

    rng = np.random.default_rng(0)
    train, held_out = [], []
    for user in range(GROUPS * USERS_PER_GROUP):
        group = user % GROUPS
        items = [f"g{group}i{n}" for n in rng.permutation(ITEMS_PER_GROUP)]
        for step, item in enumerate(items):
            example = (Click(f"u{user}", item, 1_600_000_000 + step * 60), tuple(items[:step]))
            (train if step < CLICKS_PER_USER else held_out).append(example)
    paths = {}
    for name, clicks in (("train", train), ("eval", held_out)):
        paths[name] = str(root / f"{name}.tfrecord.gz")
        with tf.io.TFRecordWriter(paths[name], options="GZIP") as writer:
            for click, history in clicks:
                writer.write(to_example(click, history))
    counts: dict[str, int] = {}
    for click, _ in train:
        counts[click.item_id] = counts.get(click.item_id, 0) + 1
    vocab.write_vocab(str(root / "vocab"), [(i, c, c) for i, c in sorted(counts.items())],
                      [(f"u{u}", CLICKS_PER_USER) for u in range(GROUPS * USERS_PER_GROUP)],
                      {"max_timestamp": 1_600_000_000 + 60 * (CLICKS_PER_USER - 1),
                       "min_timestamp": 1_600_000_000})
    paths["vocab"] = str(root / "vocab")
    return paths


def free_ports(count: int) -> list[int]:
    """`count` distinct localhost ports free right now."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def cluster(**counts: int) -> dict:
    """A cluster spec of localhost tasks: `cluster(worker=2)`."""
    ports = iter(free_ports(sum(counts.values())))
    return {job: [f"localhost:{next(ports)}" for _ in range(n)] for job, n in counts.items()}


def start(role: str, spec: dict, task_type: str, index: int, args: dict | None = None,
          log_path: str | None = None) -> subprocess.Popen:
    """Starts one task of cluster `spec` (its TF_CONFIG set) running `role`."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", PYTHONPATH=REPO,
               TF_CPP_MIN_LOG_LEVEL="2",
               TF_CONFIG=json.dumps({"cluster": spec,
                                     "task": {"type": task_type, "index": index}}))
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "tests.models.distributed", role,
                             json.dumps(args or {})], env=env, cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT)


def fn_args(data: dict, config: dict, serving_model_dir: str, log_dir: str | None = None):
    """The attributes of TFX's FnArgs that `run_fn` reads."""
    return types.SimpleNamespace(
        train_files=[data["train"]], eval_files=[data["eval"]],
        serving_model_dir=serving_model_dir, model_run_dir=log_dir,
        custom_config={"model": config, "vocab_stats_uri": data["vocab"]})


def signatures(directory: str) -> dict:
    """Each signature of a SavedModel: its inputs' and outputs' (dtype, shape)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(directory)
    out = {}
    for name, function in loaded.signatures.items():
        inputs = {spec.name: (spec.dtype.name, spec.shape.as_list())
                  for spec in function.structured_input_signature[1].values()}
        outputs = {key: (spec.dtype.name, spec.shape.as_list())
                   for key, spec in function.structured_outputs.items()}
        out[name] = {"inputs": inputs, "outputs": outputs}
    return out


def heldout_metrics(towers_dir: str, eval_file: str, k: int = 5) -> dict:
    """recall@k, and the full-catalogue softmax loss per click, of an
    exported towers model on held-out clicks, through its signatures."""
    import tensorflow as tf

    from models import topk_metrics
    from models.data import make_dataset
    from models.towers_export import Towers

    towers = Towers(towers_dir)
    candidates = towers.candidate_embeddings()
    losses = []

    def score(batch):
        scores = tf.matmul(towers.query_embeddings(batch["user_id"], batch["history"]),
                           candidates, transpose_b=True)
        target = tf.argmax(tf.cast(tf.equal(batch["item_id"][:, None],
                                            tf.constant(towers.vocab.item_ids)), tf.int32),
                           axis=1)
        losses.append(tf.nn.sparse_softmax_cross_entropy_with_logits(target, scores).numpy())
        return {"model": scores}

    batches = make_dataset(eval_file, 1000, towers.max_history, shuffle=False)
    ranked = topk_metrics.rank_clicks(batches, score, towers.vocab.item_ids, (k,),
                                      towers.export.exclude_history)
    return {f"recall@{k}": ranked["model"].metrics()[f"recall@{k}"],
            "loss": float(np.concatenate(losses).mean()),
            "candidates": candidates.numpy()}


def _serve() -> None:
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                  task_index=resolver.task_id, protocol="grpc", start=True)
    server.join()


def _train(args: dict) -> None:
    if args.get("logical_cpus"):  # replicas of a one-process MirroredStrategy
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args["logical_cpus"])
    from clicklog.config import parse
    from models import trainer
    from models.config import ModelConfig

    data = args["data"]
    trainer.run_fn(fn_args(data, args["config"], args["output"], args.get("log_dir")))
    chief = trainer.is_chief(trainer.strategy_of(parse(ModelConfig, args["config"])))
    print(f"trained chief={chief}", flush=True)


if __name__ == "__main__":
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    if sys.argv[1] in ("ps", "worker"):
        _serve()
    else:
        _train(json.loads(sys.argv[2]))
