"""Layers shared by the model families.

`BatchNormalization` is `keras.layers.BatchNormalization` with one change: under the TensorFlow backend, a
channels-last 4-D input is normalised by TensorFlow's fused kernel (`FusedBatchNormV3`, oneDNN on CPU,
cuDNN on GPU) instead of Keras 3's composite of `tf.nn.moments` and `tf.nn.batch_normalization`.
Keras 3 dropped Keras 2's fused path; the composite also upcasts bfloat16/float16 activations to float32
around every layer. Measured on this project's 2-core AVX-512/AMX CPU (`benchmarks/train_step_policy.py`): a
ResNet-20 train step is about 2x faster in float32 and in mixed_bfloat16 with the fused kernel.

Everything else (weights, config, frozen-layer semantics, the moving-statistics update with the biased
batch variance) is Keras' own, so weight files and `trainable=False` behave exactly as upstream.
"""

from __future__ import annotations

import keras

FUSED_DTYPES = ("float32", "bfloat16", "float16")
MIN_FUSED_EPSILON = 1.001e-5  # cuDNN's lower bound for the fused kernel (Keras 2 clamped to it)


@keras.saving.register_keras_serializable(package="zoo")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that uses the fused TensorFlow kernel where it applies.

    Same arguments as `keras.layers.BatchNormalization`. The fused kernel runs for 4-D channels-last inputs
    without a mask, renorm or synchronisation, with `epsilon >= 1.001e-5`, under the TensorFlow backend;
    every other case (another backend, dense or sequence inputs) is Keras' own computation.
    """

    def _fusable(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)  # Keras stores an int
            and keras.backend.standardize_dtype(inputs.dtype) in FUSED_DTYPES
            and self.epsilon >= MIN_FUSED_EPSILON
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones((channels,), "float32")
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros((channels,), "float32")
        if training and self.trainable:
            empty = tf.constant([], "float32")
            outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=gamma, offset=beta, mean=empty, variance=empty,
                epsilon=self.epsilon, data_format="NHWC", is_training=True)
            # The kernel returns the Bessel-corrected variance; Keras averages the biased one.
            count = tf.cast(tf.size(inputs) // channels, "float32")
            variance = variance * tf.maximum(count - 1.0, 0.0) / tf.maximum(count, 1.0)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            outputs, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=gamma, offset=beta,
                mean=tf.cast(self.moving_mean, "float32"), variance=tf.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon, data_format="NHWC", is_training=False)
        return tf.cast(outputs, self.compute_dtype)
