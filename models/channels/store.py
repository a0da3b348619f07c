"""Saving and loading fitted channels and their merge (the ChannelTrainer's
`RecallChannels` artifact).

Files in the directory:
  * `recall.json`: the `recall` settings, the channels in merge order, the
    merge setting and each leave-one-out's, the search and fit reports and
    the catalogue size;
  * `trending.npy`: float32 `[N]` half-life counts (always: it also orders
    what no channel puts forward);
  * `item_cf.npz`: the item-item weights as a sparse matrix (scipy's format);
  * `wals.npz`: float32 `[N, factors]` item factors, with alpha and lambda;
  * `item2vec.npz`: float32 `[N, dim]` centre and context vectors, which
    items have them, and the number of history items pooled;
  * `content.npz`: the items' TF-IDF rows as a sparse matrix;
  * `related.npz` and `cooccurrence.npz` (with a channel that relates
    items): `related_items`' neighbour weights and its baseline's counts.
The two-tower channel is not copied: `load` takes the towers it was fitted
with (the Trainer's `Model`).
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import scipy.sparse
import tensorflow as tf

from clicklog.config import parse
from models.channels.clicks import Catalogue
from models.channels.config import RecallConfig
from models.channels.content import ContentChannel
from models.channels.item2vec import Item2VecChannel
from models.channels.item_cf import ItemCfChannel
from models.channels.merge import MergeSetting
from models.channels.recall import Recall
from models.channels.trending import TrendingChannel
from models.channels.two_tower import TwoTowerChannel
from models.channels.wals import WalsChannel
from models.towers_export import Towers

RECALL_JSON = "recall.json"


def _write_bytes(path: str, write) -> None:
    """Writes through a local buffer, so `path` may be any tf.io.gfile URI."""
    buffer = io.BytesIO()
    write(buffer)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())


def _read_bytes(path: str):
    with tf.io.gfile.GFile(path, "rb") as f:
        return io.BytesIO(f.read())


def save(recall: Recall, directory: str) -> None:
    tf.io.gfile.makedirs(directory)
    meta = {"config": recall.config.to_dict(), "channels": list(recall.channels),
            "num_items": len(recall.catalogue),
            "setting": recall.setting.to_dict(),
            "without": {name: s.to_dict() for name, s in recall.without.items()},
            "reports": recall.reports, "fit": recall.fit_reports}
    with tf.io.gfile.GFile(os.path.join(directory, RECALL_JSON), "w") as f:
        f.write(json.dumps(meta, indent=2, sort_keys=True))
    _write_bytes(os.path.join(directory, "trending.npy"), lambda b: np.save(b, recall.tie))
    for name, matrix in (("related", recall.related), ("cooccurrence", recall.cooccurrence)):
        if matrix is not None:
            _write_bytes(os.path.join(directory, f"{name}.npz"),
                         lambda b, m=matrix: scipy.sparse.save_npz(b, m))
    for channel in recall.channels.values():
        if isinstance(channel, ItemCfChannel):
            _write_bytes(os.path.join(directory, "item_cf.npz"),
                         lambda b, c=channel: scipy.sparse.save_npz(
                             b, scipy.sparse.csr_matrix(c.weights)))
        elif isinstance(channel, WalsChannel):
            _write_bytes(os.path.join(directory, "wals.npz"), lambda b, c=channel: np.savez(
                b, item_factors=c.item_factors, alpha=c.alpha, regularization=c.regularization))
        elif isinstance(channel, Item2VecChannel):
            _write_bytes(os.path.join(directory, "item2vec.npz"), lambda b, c=channel: np.savez(
                b, vectors=c.vectors, context=c.context, has_vector=c.has_vector,
                pool_items=c.pool_items))
        elif isinstance(channel, ContentChannel):
            _write_bytes(os.path.join(directory, "content.npz"),
                         lambda b, c=channel: scipy.sparse.save_npz(b, c.vectors))


def read_meta(directory: str) -> dict:
    with tf.io.gfile.GFile(os.path.join(directory, RECALL_JSON)) as f:
        return json.loads(f.read())


def restore_merge(recall: Recall, meta: dict) -> None:
    """Gives `recall` the merge settings (and leave-one-outs, search reports)
    saved in `meta` (`read_meta`)."""
    if meta["channels"] != list(recall.channels):
        raise ValueError(f"the saved merge is over channels {meta['channels']}; "
                         f"recall.channels names {list(recall.channels)}")
    recall.setting = MergeSetting(**meta["setting"])
    recall.without = {name: MergeSetting(**s) for name, s in meta["without"].items()}
    recall.reports = meta["reports"]


def towers_only(towers: Towers) -> Recall:
    """The two-tower channel alone as a `Recall` (its merged list is the
    towers' ranking; popularity orders ties), for a run without channels."""
    catalogue = Catalogue(towers.vocab.item_ids)
    return Recall({"two_tower": TwoTowerChannel(towers, catalogue.item_ids)}, catalogue,
                  np.asarray(towers.vocab.item_counts, np.float32),
                  RecallConfig(channels=("two_tower",)))


def load(directory: str, towers_dir: str | None = None) -> Recall:
    """The saved channels over the towers' catalogue (`towers_dir` is needed
    when the channels include two_tower)."""
    meta = read_meta(directory)
    config = parse(RecallConfig, meta["config"])
    towers = Towers(towers_dir) if towers_dir else None
    if towers is not None and towers.vocab.num_items != meta["num_items"]:
        raise ValueError(f"recall channels in {directory} rank {meta['num_items']} items, the "
                         f"towers in {towers_dir} {towers.vocab.num_items}: not the same "
                         "catalogue")
    trending = np.load(_read_bytes(os.path.join(directory, "trending.npy")))
    catalogue = Catalogue(towers.vocab.item_ids if towers is not None
                          else [str(n) for n in range(meta["num_items"])])
    channels = {}
    for name in meta["channels"]:
        if name == "two_tower":
            if towers is None:
                raise ValueError(f"recall channels in {directory} include two_tower: pass the "
                                 "towers they were fitted with")
            channels[name] = TwoTowerChannel(towers, towers.vocab.item_ids)
        elif name == "trending":
            channels[name] = TrendingChannel(trending)
        elif name == "item_cf":
            weights = scipy.sparse.load_npz(_read_bytes(os.path.join(directory, "item_cf.npz")))
            channels[name] = ItemCfChannel(weights.tocsr(), meta["fit"].get("item_cf", {}))
        elif name == "wals":
            data = np.load(_read_bytes(os.path.join(directory, "wals.npz")))
            channels[name] = WalsChannel(data["item_factors"], float(data["alpha"]),
                                         float(data["regularization"]))
        elif name == "item2vec":
            data = np.load(_read_bytes(os.path.join(directory, "item2vec.npz")))
            channels[name] = Item2VecChannel(data["vectors"], data["context"],
                                             data["has_vector"], catalogue,
                                             int(data["pool_items"]), meta["fit"].get(name))
        elif name == "content":
            vectors = scipy.sparse.load_npz(_read_bytes(os.path.join(directory, "content.npz")))
            channels[name] = ContentChannel(vectors.tocsr(), meta["fit"].get(name))
    recall = Recall(channels, catalogue, trending, config)
    restore_merge(recall, meta)
    recall.fit_reports = meta["fit"]
    for name in ("related", "cooccurrence"):
        path = os.path.join(directory, f"{name}.npz")
        if tf.io.gfile.exists(path):
            setattr(recall, name, scipy.sparse.load_npz(_read_bytes(path)).tocsr())
    return recall
