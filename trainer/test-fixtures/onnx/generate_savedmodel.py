"""Writes tiny-cnn-savedmodel/: the network of generate.py (same weights, so reference.json holds its outputs too)
as a TensorFlow SavedModel, NHWC input "image" [N, 8, 8, 1], signature serving_default with outputs "logits"
and "features".

Dev-only (not run by the tests): `/tmp/venv-onnx/bin/pip install tensorflow-cpu onnx numpy`, then
`/tmp/venv-onnx/bin/python trainer/test-fixtures/onnx/generate_savedmodel.py`.
"""

import pathlib
import shutil

import tensorflow as tf

import generate as g

HERE = pathlib.Path(__file__).parent


class TinyCnn(tf.Module):
    def __init__(self):
        super().__init__()
        # ONNX [out, in, kh, kw] -> TensorFlow HWIO.
        self.conv_w = tf.Variable(g.conv_w.transpose(2, 3, 1, 0), name="conv_w")
        self.conv_b = tf.Variable(g.conv_b, name="conv_b")
        self.fc_w = tf.Variable(g.fc_w.T, name="fc_w")
        self.fc_b = tf.Variable(g.fc_b, name="fc_b")

    @tf.function(input_signature=[tf.TensorSpec([None, g.H, g.W, g.C], tf.float32, name="image")])
    def serve(self, image):
        x = tf.nn.relu(tf.nn.conv2d(image, self.conv_w, strides=1, padding="SAME") + self.conv_b)
        x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        features = tf.reduce_mean(x, axis=[1, 2])
        return {"logits": tf.matmul(features, self.fc_w) + self.fc_b, "features": features}


def main():
    out = HERE / "tiny-cnn-savedmodel"
    shutil.rmtree(out, ignore_errors=True)
    module = TinyCnn()
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})


if __name__ == "__main__":
    main()
