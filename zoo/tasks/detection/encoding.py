"""YOLO targets: corner boxes <-> `(S, S, B, 5 + K)` grid tensors.

Per anchor the layout is the curriculum's `[p_c, b_x, b_y, b_h, b_w, c_1..c_K]`:
`p_c` is 1 where an object is assigned, `(b_x, b_y)` is the object's centre as an
offset in [0, 1) inside its cell (x across, y down), `(b_h, b_w)` its size in cell
units (may exceed 1), and `c_k` a one-hot class. A 3x3 grid, one anchor and three
classes give `(3, 3, 1, 8)`, i.e. the curriculum's 3x3x8 after flattening the
anchor axis (`reshape(S, S, B * (5 + K))`).

Each object goes to the cell holding its centre and, within it, to the anchor whose
shape has the best IoU with it; when that anchor is already taken the next best free
anchor is used, and when every anchor is taken the object is dropped. Objects are
assigned in the order given.
"""

from __future__ import annotations

import numpy as np


def encode(boxes, classes, *, grid_size, anchors, num_classes):
    """Encodes corner boxes into YOLO grid targets (tf ops; usable in tf.data).

    Args:
        boxes: `[M, 4]` or `[N, M, 4]` normalised `[ymin, xmin, ymax, xmax]`.
        classes: `[M]` or `[N, M]` int class ids; -1 marks padding.
        grid_size: `S`.
        anchors: `[B, 2]` anchor `(h, w)` in image units (fractions of the image).
        num_classes: `K`.

    Returns:
        float32 `[S, S, B, 5 + K]` (or `[N, S, S, B, 5 + K]`).
    """
    import tensorflow as tf

    boxes = tf.convert_to_tensor(boxes, tf.float32)
    classes = tf.cast(tf.convert_to_tensor(classes), tf.int32)
    unbatched = boxes.shape.rank == 2
    if unbatched:
        boxes, classes = boxes[None], classes[None]
    anchors = tf.constant(np.asarray(anchors, "float32").reshape(-1, 2))
    s, b, k = int(grid_size), int(anchors.shape[0]), int(num_classes)
    n = tf.shape(boxes)[0]
    m = tf.shape(boxes)[1]

    boxes = tf.clip_by_value(boxes, 0.0, 1.0)
    h = boxes[..., 2] - boxes[..., 0]
    w = boxes[..., 3] - boxes[..., 1]
    cy = (boxes[..., 0] + boxes[..., 2]) / 2
    cx = (boxes[..., 1] + boxes[..., 3]) / 2
    valid = (classes >= 0) & (classes < k) & (h > 0) & (w > 0)
    row = tf.clip_by_value(tf.cast(tf.floor(cy * s), tf.int32), 0, s - 1)
    col = tf.clip_by_value(tf.cast(tf.floor(cx * s), tf.int32), 0, s - 1)
    inter = tf.minimum(h[..., None], anchors[:, 0]) * tf.minimum(w[..., None], anchors[:, 1])
    shape_iou = inter / (h[..., None] * w[..., None] + anchors[:, 0] * anchors[:, 1] - inter + 1e-12)  # [N, M, B]
    vectors = tf.concat(
        [
            tf.ones_like(h)[..., None],
            (cx * s - tf.cast(col, tf.float32))[..., None],
            (cy * s - tf.cast(row, tf.float32))[..., None],
            (h * s)[..., None],
            (w * s)[..., None],
            tf.one_hot(tf.maximum(classes, 0), k),
        ],
        axis=-1,
    )  # [N, M, 5 + K]
    batch_ids = tf.range(n)

    def body(i, grid):
        cell = tf.stack([batch_ids, row[:, i], col[:, i]], axis=1)
        taken = tf.gather_nd(grid, cell)[..., 0] > 0  # [N, B]
        score = tf.where(taken, -1.0, shape_iou[:, i])
        anchor = tf.argmax(score, axis=1, output_type=tf.int32)
        ok = valid[:, i] & (tf.reduce_max(score, axis=1) >= 0)
        index = tf.concat([cell, anchor[:, None]], axis=1)
        old = tf.gather_nd(grid, index)
        new = tf.where(ok[:, None], vectors[:, i], old)
        return i + 1, tf.tensor_scatter_nd_update(grid, index, new)

    grid0 = tf.zeros(tf.stack([n, s, s, b, 5 + k]), tf.float32)
    _, grid = tf.while_loop(lambda i, g: i < m, body, (tf.constant(0), grid0))
    grid = tf.ensure_shape(grid, [None, s, s, b, 5 + k])
    return grid[0] if unbatched else grid


def grid_to_boxes(grid):
    """Corner boxes of every cell/anchor of a target (or decoded) grid.

    Args:
        grid: `[..., S, S, B, 5 + K]` in the target layout (tf or numpy).

    Returns:
        `(boxes, objectness, class_probs)`: `[..., S*S*B, 4]` normalised corners,
        `[..., S*S*B]` `p_c` and `[..., S*S*B, K]` class scores, in row-major
        (row, column, anchor) order.
    """
    import tensorflow as tf

    grid = tf.convert_to_tensor(grid, tf.float32)
    s = grid.shape[-4]
    b = grid.shape[-2]
    rows = tf.range(s, dtype=tf.float32)[:, None, None]
    cols = tf.range(s, dtype=tf.float32)[None, :, None]
    cx = (cols + grid[..., 1]) / s
    cy = (rows + grid[..., 2]) / s
    h = grid[..., 3] / s
    w = grid[..., 4] / s
    corners = tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
    lead = tf.shape(grid)[:-4]
    flat = tf.concat([lead, [s * s * b]], axis=0)
    boxes = tf.reshape(corners, tf.concat([flat, [4]], axis=0))
    objectness = tf.reshape(grid[..., 0], flat)
    class_probs = tf.reshape(grid[..., 5:], tf.concat([flat, [grid.shape[-1] - 5]], axis=0))
    return boxes, objectness, class_probs


def decode(raw, anchors, *, max_log_scale=6.0):
    """Raw model output (logits) -> the target layout with probabilities.

    `p_c = sigmoid(t_0)`, `(b_x, b_y) = sigmoid(t_1, t_2)`,
    `(b_h, b_w) = S * anchor * exp(t_3, t_4)`, `c = softmax(t_5..)`.

    Args:
        raw: `[..., S, S, B, 5 + K]` model output.
        anchors: `[B, 2]` anchor `(h, w)` in image units.
        max_log_scale: Clip of `t_3, t_4` before `exp` (keeps untrained outputs finite).

    Returns:
        float32 tensor of the same shape.
    """
    import tensorflow as tf

    raw = tf.cast(tf.convert_to_tensor(raw), tf.float32)
    s = raw.shape[-4]
    anchors = tf.constant(np.asarray(anchors, "float32").reshape(-1, 2))
    hw = s * anchors * tf.exp(tf.minimum(raw[..., 3:5], max_log_scale))
    return tf.concat(
        [tf.sigmoid(raw[..., 0:3]), hw, tf.nn.softmax(raw[..., 5:], axis=-1)], axis=-1
    )
