"""Build the small committed models in models/ (deterministic: same bytes every run).

Each model exercises something real edge models need: a CNN with BatchNorm,
depthwise conv and a PyTorch-style flatten (shape subgraph), an MLP, a
dynamic batch dim, recurrent speech models (LSTM, bidirectional GRU), a
transformer block, and an If on a sample-rate input like silero VAD's.

    python models/make_small.py [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
PRODUCER = "edgec models/make_small.py"
F = TensorProto.FLOAT


class Builder:
    """Collects nodes and initializers with exporter-style names."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def weight(self, name: str, shape, scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
        s = scale if scale is not None else 1.0 / np.sqrt(max(fan_in, 1))
        self.inits.append(numpy_helper.from_array(
            (self.rng.standard_normal(shape) * s).astype(np.float32), name))
        return name

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs, name: str, n_out: int = 1, **attrs):
        outs = [f"{name}_output_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def model(self, name, inputs, outputs, rename: dict[str, str]) -> onnx.ModelProto:
        """``rename`` maps internal output names to the graph's public output names."""
        for node in self.nodes:
            node.output[:] = [rename.get(o, o) for o in node.output]
            node.input[:] = [rename.get(i, i) for i in node.input]
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name=PRODUCER)
        onnx.checker.check_model(m, full_check=True)
        return m


def tiny_cnn() -> onnx.ModelProto:
    b = Builder(1)
    x = b.op("Conv", ["image", b.weight("conv1.weight", (8, 3, 3, 3))], "/conv1/Conv",
             pads=[1, 1, 1, 1])
    bn = b.op("BatchNormalization",
              [x, b.const("bn1.weight", (b.rng.random(8) + 0.5).astype(np.float32)),
               b.const("bn1.bias", (b.rng.standard_normal(8) * 0.1).astype(np.float32)),
               b.const("bn1.running_mean", (b.rng.standard_normal(8) * 0.1).astype(np.float32)),
               b.const("bn1.running_var", (b.rng.random(8) + 0.5).astype(np.float32))],
              "/bn1/BatchNormalization")
    x = b.op("Relu", [bn], "/relu1/Relu")
    x = b.op("Conv", [x, b.weight("conv2.weight", (16, 8, 3, 3)),
                      b.weight("conv2.bias", (16,), 0.1)], "/conv2/Conv",
             pads=[1, 1, 1, 1], strides=[2, 2])
    x = b.op("Relu", [x], "/relu2/Relu")
    x = b.op("Conv", [x, b.weight("dw.weight", (16, 1, 3, 3))], "/dw/Conv", pads=[1, 1, 1, 1],
             group=16)
    x = b.op("Relu", [x], "/relu3/Relu")
    x = b.op("MaxPool", [x], "/pool/MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("GlobalAveragePool", [x], "/gap/GlobalAveragePool")
    # torch.flatten(x, 1) as exported: the batch size is read from the shape at run time
    shape = b.op("Shape", [x], "/Shape")
    n = b.op("Gather", [shape, b.const("/Constant_output_0", np.array(0, np.int64))],
             "/Gather", axis=0)
    n = b.op("Unsqueeze", [n, b.const("/Constant_1_output_0", np.array([0], np.int64))],
             "/Unsqueeze")
    flat_shape = b.op("Concat", [n, b.const("/Constant_2_output_0", np.array([-1], np.int64))],
                      "/Concat", axis=0)
    x = b.op("Reshape", [x, flat_shape], "/Reshape")
    x = b.op("Gemm", [x, b.weight("fc.weight", (10, 16)), b.weight("fc.bias", (10,), 0.1)],
             "/fc/Gemm", transB=1)
    b.op("Softmax", [x], "/Softmax", axis=1)
    return b.model("tiny_cnn",
                   [helper.make_tensor_value_info("image", F, [1, 3, 32, 32])],
                   [helper.make_tensor_value_info("probs", F, [1, 10])],
                   {"/Softmax_output_0": "probs"})


def mlp() -> onnx.ModelProto:
    b = Builder(2)
    x = b.op("Gemm", ["features", b.weight("fc1.weight", (32, 64)),
                      b.weight("fc1.bias", (32,), 0.1)], "/fc1/Gemm", transB=1)
    x = b.op("Relu", [x], "/relu/Relu")
    x = b.op("MatMul", [x, b.weight("fc2.weight_t", (32, 8), 0.3)], "/fc2/MatMul")
    x = b.op("Add", [x, b.weight("fc2.bias", (8,), 0.1)], "/fc2/Add")
    b.op("Sigmoid", [x], "/Sigmoid")
    return b.model("mlp", [helper.make_tensor_value_info("features", F, [1, 64])],
                   [helper.make_tensor_value_info("score", F, [1, 8])],
                   {"/Sigmoid_output_0": "score"})


def dynamic_batch() -> onnx.ModelProto:
    b = Builder(3)
    x = b.op("Conv", ["x", b.weight("conv.weight", (6, 3, 3, 3)), b.weight("conv.bias", (6,))],
             "/conv/Conv", pads=[1, 1, 1, 1])
    x = b.op("Relu", [x], "/relu/Relu")
    x = b.op("GlobalAveragePool", [x], "/gap/GlobalAveragePool")
    x = b.op("Flatten", [x], "/Flatten", axis=1)
    b.op("MatMul", [x, b.weight("head.weight_t", (6, 5), 0.5)], "/head/MatMul")
    return b.model("dynamic_batch",
                   [helper.make_tensor_value_info("x", F, ["batch", 3, 16, 16])],
                   [helper.make_tensor_value_info("y", F, ["batch", 5])],
                   {"/head/MatMul_output_0": "y"})


def tiny_lstm() -> onnx.ModelProto:
    b = Builder(4)
    hidden, feat, steps, classes = 32, 40, 20, 12
    x = b.op("Transpose", ["feats"], "/Transpose", perm=[1, 0, 2])  # [T, 1, F]
    y, _, _ = b.op("LSTM", [x, b.weight("lstm.W", (1, 4 * hidden, feat), 0.2),
                              b.weight("lstm.R", (1, 4 * hidden, hidden), 0.2),
                              b.weight("lstm.B", (1, 8 * hidden), 0.1), "", "h0", "c0"],
                     "/lstm/LSTM", n_out=3, hidden_size=hidden)
    y = b.op("Reshape", [y, b.const("/Constant_output_0", np.array([steps, hidden], np.int64))],
             "/Reshape")
    y = b.op("MatMul", [y, b.weight("head.weight_t", (hidden, classes), 0.3)], "/head/MatMul")
    y = b.op("Add", [y, b.weight("head.bias", (classes,), 0.1)], "/head/Add")
    b.op("LogSoftmax", [y], "/LogSoftmax", axis=1)
    return b.model("tiny_lstm",
                   [helper.make_tensor_value_info("feats", F, [1, steps, feat]),
                    helper.make_tensor_value_info("h0", F, [1, 1, hidden]),
                    helper.make_tensor_value_info("c0", F, [1, 1, hidden])],
                   [helper.make_tensor_value_info("logits", F, [steps, classes]),
                    helper.make_tensor_value_info("hn", F, [1, 1, hidden]),
                    helper.make_tensor_value_info("cn", F, [1, 1, hidden])],
                   {"/LogSoftmax_output_0": "logits", "/lstm/LSTM_output_1": "hn",
                    "/lstm/LSTM_output_2": "cn"})


def tiny_gru() -> onnx.ModelProto:
    b = Builder(5)
    hidden, feat, steps, classes = 24, 20, 16, 6
    x = b.op("Transpose", ["feats"], "/Transpose", perm=[1, 0, 2])  # [T, 1, F]
    y, _ = b.op("GRU", [x, b.weight("gru.W", (2, 3 * hidden, feat), 0.25),
                        b.weight("gru.R", (2, 3 * hidden, hidden), 0.25),
                        b.weight("gru.B", (2, 6 * hidden), 0.1)],
                "/gru/GRU", n_out=2, hidden_size=hidden, direction="bidirectional",
                linear_before_reset=1)
    y = b.op("Transpose", [y], "/Transpose_1", perm=[0, 2, 1, 3])  # [T, 1, 2, H]
    y = b.op("Reshape", [y, b.const("/Constant_output_0",
                                    np.array([steps, 2 * hidden], np.int64))], "/Reshape")
    b.op("MatMul", [y, b.weight("head.weight_t", (2 * hidden, classes), 0.3)], "/head/MatMul")
    return b.model("tiny_gru", [helper.make_tensor_value_info("feats", F, [1, steps, feat])],
                   [helper.make_tensor_value_info("scores", F, [steps, classes])],
                   {"/head/MatMul_output_0": "scores"})


def tiny_transformer() -> onnx.ModelProto:
    b = Builder(6)
    seq, dim, heads, vocab, ffn = 16, 32, 2, 100, 64
    hd = dim // heads

    def layer_norm(x, name):
        return b.op("LayerNormalization",
                    [x, b.const(f"{name}.weight", (1 + 0.1 * b.rng.standard_normal(dim))
                                .astype(np.float32)),
                     b.const(f"{name}.bias", (0.1 * b.rng.standard_normal(dim))
                             .astype(np.float32))],
                    f"/{name}/LayerNormalization", axis=-1, epsilon=1e-5)

    def linear(x, name, n_in, n_out):
        y = b.op("MatMul", [x, b.weight(f"{name}.weight_t", (n_in, n_out))], f"/{name}/MatMul")
        return b.op("Add", [y, b.weight(f"{name}.bias", (n_out,), 0.05)], f"/{name}/Add")

    def heads_first(x, name):  # [1, S, D] -> [1, H, S, hd]
        x = b.op("Reshape", [x, b.const(f"/{name}/shape", np.array([1, seq, heads, hd],
                                                                    np.int64))],
                 f"/{name}/Reshape")
        return b.op("Transpose", [x], f"/{name}/Transpose", perm=[0, 2, 1, 3])

    emb = b.op("Gather", [b.weight("embed.weight", (vocab, dim), 1.0), "tokens"],
               "/embed/Gather", axis=0)
    x = b.op("Add", [emb, b.weight("pos_embed", (1, seq, dim), 0.5)], "/pos/Add")
    h = layer_norm(x, "ln1")
    q = heads_first(linear(h, "attn.q", dim, dim), "q")
    k = heads_first(linear(h, "attn.k", dim, dim), "k")
    v = heads_first(linear(h, "attn.v", dim, dim), "v")
    kt = b.op("Transpose", [k], "/attn/Transpose", perm=[0, 1, 3, 2])
    s = b.op("MatMul", [q, kt], "/attn/MatMul")
    s = b.op("Div", [s, b.const("/attn/scale", np.array(np.sqrt(hd), np.float32))],
             "/attn/Div")
    p = b.op("Softmax", [s], "/attn/Softmax", axis=-1)
    a = b.op("MatMul", [p, v], "/attn/MatMul_1")
    a = b.op("Transpose", [a], "/attn/Transpose_1", perm=[0, 2, 1, 3])
    a = b.op("Reshape", [a, b.const("/attn/shape", np.array([1, seq, dim], np.int64))],
             "/attn/Reshape")
    x = b.op("Add", [x, linear(a, "attn.out", dim, dim)], "/res1/Add")
    h = linear(layer_norm(x, "ln2"), "ffn.up", dim, ffn)
    # GELU exactly as torch exports it: x * 0.5 * (1 + erf(x / sqrt(2)))
    e = b.op("Erf", [b.op("Div", [h, b.const("/gelu/sqrt2", np.array(np.sqrt(2), np.float32))],
                          "/gelu/Div")], "/gelu/Erf")
    e = b.op("Add", [e, b.const("/gelu/one", np.array(1, np.float32))], "/gelu/Add")
    g = b.op("Mul", [b.op("Mul", [h, e], "/gelu/Mul"),
                     b.const("/gelu/half", np.array(0.5, np.float32))], "/gelu/Mul_1")
    b.op("Add", [x, linear(g, "ffn.down", ffn, dim)], "/res2/Add")
    return b.model("tiny_transformer",
                   [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, seq])],
                   [helper.make_tensor_value_info("hidden", F, [1, seq, dim])],
                   {"/res2/Add_output_0": "hidden"})


def sr_switch() -> onnx.ModelProto:
    """Like silero VAD: a branch chosen by the sample rate, then a shared tail."""
    b = Builder(7)

    def branch(name: str, weight: str) -> onnx.GraphProto:
        w = numpy_helper.from_array((b.rng.standard_normal((8, 4)) * 0.5).astype(np.float32),
                                    weight)
        frames = helper.make_node("Reshape", ["audio", "/frames/shape"], [f"{name}/frames"],
                                  name=f"/{name}/Reshape")
        proj = helper.make_node("MatMul", [f"{name}/frames", weight], [f"{name}/out"],
                                name=f"/{name}/MatMul")
        # frames = samples / 8 stays symbolic: a static [1, 8, 4] here would make
        # onnxruntime reject every sample count but 64
        return helper.make_graph([frames, proj], name, [],
                                 [helper.make_tensor_value_info(f"{name}/out", F,
                                                                [1, "frames", 4])],
                                 [w])

    b.const("/frames/shape", np.array([1, -1, 8], np.int64))
    cond = b.op("Equal", ["sr", b.const("/sr16k", np.array(16000, np.int64))], "/Equal")
    y = b.op("If", [cond], "/If", then_branch=branch("sr16k", "filters_16k"),
             else_branch=branch("sr8k", "filters_8k"))
    y = b.op("Relu", [y], "/Relu")
    b.op("ReduceMean", [y], "/ReduceMean", axes=[1], keepdims=0)
    return b.model("sr_switch",
                   [helper.make_tensor_value_info("audio", F, [1, "samples"]),
                    helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
                   [helper.make_tensor_value_info("features", F, [1, 4])],
                   {"/ReduceMean_output_0": "features"})


MODELS = {
    "tiny_cnn.onnx": tiny_cnn,
    "mlp.onnx": mlp,
    "dynamic_batch.onnx": dynamic_batch,
    "tiny_lstm.onnx": tiny_lstm,
    "tiny_gru.onnx": tiny_gru,
    "tiny_transformer.onnx": tiny_transformer,
    "sr_switch.onnx": sr_switch,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, build in MODELS.items():
        path = args.out / name
        path.write_bytes(build().SerializeToString(deterministic=True))
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
