"""Writes the ONNX teacher fixtures of the trainer's tests, and their reference outputs.

Dev-only (not run by the tests): `python3 -m venv /tmp/venv-onnx && /tmp/venv-onnx/bin/pip install onnx numpy`,
then `/tmp/venv-onnx/bin/python trainer/test-fixtures/onnx/generate.py`. The graphs are built by hand with
onnx.helper (a tiny CNN as torch.onnx.export would write it: NCHW, Conv/Relu/MaxPool/GlobalAveragePool/Gemm),
and the reference outputs are computed here in plain numpy, independently of ONNX Runtime, on fixed inputs.

- tiny-cnn-nchw.onnx: input "input" [N, 1, 8, 8] (dynamic batch), outputs "logits" [N, 3] and "features" [N, 4].
- tiny-cnn-nhwc-b2.onnx: the same network taking NHWC input "image" [2, 8, 8, 1] (fixed batch 2; a Transpose to
  NCHW inside), outputs "probabilities" (softmax of the logits) first, then "logits", then "features".
- reference.json: the inputs (NHWC, [5, 8, 8, 1]) and the expected logits and features.
"""

import json
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = pathlib.Path(__file__).parent
rng = np.random.default_rng(7)

C, H, W, K1, CLASSES = 1, 8, 8, 4, 3
conv_w = rng.normal(0, 0.5, (K1, C, 3, 3)).astype(np.float32)
conv_b = rng.normal(0, 0.1, (K1,)).astype(np.float32)
fc_w = rng.normal(0, 0.5, (CLASSES, K1)).astype(np.float32)
fc_b = rng.normal(0, 0.1, (CLASSES,)).astype(np.float32)


def initializers():
    return [
        numpy_helper.from_array(conv_w, "conv.weight"),
        numpy_helper.from_array(conv_b, "conv.bias"),
        numpy_helper.from_array(fc_w, "fc.weight"),
        numpy_helper.from_array(fc_b, "fc.bias"),
    ]


def body(x):
    """The CNN from NCHW tensor name `x`: returns its nodes; features -> "features", logits -> "logits"."""
    return [
        helper.make_node("Conv", [x, "conv.weight", "conv.bias"], ["c1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p1"], ["g1"]),
        helper.make_node("Flatten", ["g1"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], transB=1),
    ]


def model(graph):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mokd-fixtures")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def nchw_model():
    graph = helper.make_graph(
        body("input"),
        "tiny_cnn_nchw",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", C, H, W])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", K1]),
        ],
        initializers(),
    )
    return model(graph)


def nhwc_fixed_batch_model():
    nodes = [helper.make_node("Transpose", ["image"], ["image_nchw"], perm=[0, 3, 1, 2])]
    nodes += body("image_nchw")
    nodes += [helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn_nhwc_b2",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [2, H, W, C])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [2, CLASSES]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [2, CLASSES]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [2, K1]),
        ],
        initializers(),
    )
    return model(graph)


def reference(x_nhwc):
    """The network in numpy (NCHW), independent of ONNX Runtime."""
    x = x_nhwc.transpose(0, 3, 1, 2).astype(np.float64)
    n = x.shape[0]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.zeros((n, K1, H, W))
    for k in range(K1):
        for i in range(H):
            for j in range(W):
                conv[:, k, i, j] = (padded[:, :, i : i + 3, j : j + 3] * conv_w[k]).sum(axis=(1, 2, 3)) + conv_b[k]
    relu = np.maximum(conv, 0)
    pooled = relu.reshape(n, K1, H // 2, 2, W // 2, 2).max(axis=(3, 5))
    features = pooled.mean(axis=(2, 3))
    logits = features @ fc_w.T.astype(np.float64) + fc_b
    return logits, features


def main():
    onnx.save(nchw_model(), HERE / "tiny-cnn-nchw.onnx")
    onnx.save(nhwc_fixed_batch_model(), HERE / "tiny-cnn-nhwc-b2.onnx")
    # Five samples: not a multiple of the fixed batch (2), so the loader's padding of the last batch is tested.
    inputs = rng.normal(0, 1, (5, H, W, C)).astype(np.float32)
    logits, features = reference(inputs)
    out = {
        "inputShape": [H, W, C],
        "inputs": inputs.reshape(-1).tolist(),
        "logits": logits.reshape(-1).tolist(),
        "features": features.reshape(-1).tolist(),
        "numClasses": CLASSES,
        "featureDim": K1,
    }
    (HERE / "reference.json").write_text(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
