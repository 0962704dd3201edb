"""Which auto-shard policy a pipeline gets under multi-worker training.

tf.data's default (AUTO) tries FILE sharding whenever the dataset reads record
files, and fails when a split has fewer files than workers ("Could not apply FILE
based sharding: the dataset only has 1 file(s)"). FILE is chosen here only when
every worker gets a file; otherwise DATA (every worker reads all, keeps its share).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

Policy = tf.data.experimental.AutoShardPolicy


def workers() -> int:
    """Tasks that train in the TF_CONFIG cluster (chief + workers); 1 without one."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    except (ValueError, AttributeError):  # zoo.distribute reports a malformed TF_CONFIG
        return 1
    return max(1, sum(len(v) for k, v in cluster.items() if k in ("chief", "worker")))


def policy(num_files, num_workers=None):
    """FILE when `num_files` (None: not file-based) covers every worker, else DATA."""
    num_workers = workers() if num_workers is None else num_workers
    if num_files is not None and num_files >= num_workers:
        return Policy.FILE
    return Policy.DATA
