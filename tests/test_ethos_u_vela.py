"""Arm Vela as edgec runs it for Ethos-U: command line, report parsing, failures, target tables.

The int8 TFLite models are built here with the flatbuffer schema module Vela ships
(``ethosu.vela.tflite``), so no TensorFlow is needed; LiteRT only checks that they load.
Each Vela run takes a fraction of a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ethosu.vela", reason="Arm Vela (ethos-u-vela) is not installed")

import flatbuffers
from ethosu.vela.tflite import (
    Buffer,
    BuiltinOperator,
    BuiltinOptions,
    Conv2DOptions,
    DepthToSpaceOptions,
    Model,
    Operator,
    OperatorCode,
    QuantizationParameters,
    SubGraph,
    Tensor,
    TensorType,
)

from edgec.accel.plugins.ethos_u import vela
from edgec.accel.plugins.ethos_u.vela import VelaConfig, compile_tflite
from edgec.errors import ToolchainError, UsageError

U55 = VelaConfig("ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram")
WHERE = "targets/npu.toml [ethos_u]"

# ---- a tiny int8 TFLite builder ----------------------------------------------------------

INT8, INT32 = TensorType.TensorType.INT8, TensorType.TensorType.INT32
SAME, VALID = 0, 1


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: int
    scale: list[float]
    zero_point: list[int]
    data: bytes | None


@dataclass
class Net:
    """Tensors and operators of one subgraph; ``serialize()`` gives the .tflite bytes."""

    tensors: list[_Tensor] = field(default_factory=list)
    # (opcode, inputs, outputs, options type, options builder)
    ops: list[tuple] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def tensor(self, name, shape, *, dtype=INT8, scale=(0.05,), zp=(0,), data=None) -> int:
        raw = None if data is None else np.ascontiguousarray(data).tobytes()
        self.tensors.append(_Tensor(name, tuple(shape), dtype, list(scale), list(zp), raw))
        return len(self.tensors) - 1

    def input(self, name, shape) -> int:
        x = self.tensor(name, shape)
        self.inputs.append(x)
        return x

    def conv(self, x, cout, name, *, k=3, stride=1, padding=SAME, relu=True, seed=0) -> int:
        """int8 CONV_2D, per-channel weights, int32 bias, optionally a fused RELU."""
        rng = np.random.default_rng(seed)
        _, h, w, cin = self.tensors[x].shape
        if padding == SAME:
            oh, ow = -(-h // stride), -(-w // stride)
        else:
            oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
        weights = self.tensor(f"{name}/weights", (cout, k, k, cin), scale=[0.02] * cout,
                              zp=[0] * cout,
                              data=rng.integers(-127, 128, (cout, k, k, cin), dtype=np.int8))
        bias = self.tensor(f"{name}/bias", (cout,), dtype=INT32, scale=[0.05 * 0.02] * cout,
                           zp=[0] * cout, data=rng.integers(-1000, 1000, cout).astype(np.int32))
        y = self.tensor(name, (1, oh, ow, cout), scale=(0.5,), zp=(-128,) if relu else (0,))

        def options(b):
            Conv2DOptions.Start(b)
            Conv2DOptions.AddPadding(b, padding)
            Conv2DOptions.AddStrideW(b, stride)
            Conv2DOptions.AddStrideH(b, stride)
            Conv2DOptions.AddFusedActivationFunction(b, 1 if relu else 0)
            Conv2DOptions.AddDilationWFactor(b, 1)
            Conv2DOptions.AddDilationHFactor(b, 1)
            return Conv2DOptions.End(b)

        self.ops.append((BuiltinOperator.BuiltinOperator.CONV_2D, [x, weights, bias], [y],
                         BuiltinOptions.BuiltinOptions.Conv2DOptions, options))
        return y

    def depth_to_space(self, x, name, block=2) -> int:
        """DEPTH_TO_SPACE: valid int8 TFLite that Vela 5.2 leaves on the CPU."""
        n, h, w, c = self.tensors[x].shape
        src = self.tensors[x]
        y = self.tensor(name, (n, h * block, w * block, c // (block * block)),
                        scale=src.scale, zp=src.zero_point)

        def options(b):
            DepthToSpaceOptions.Start(b)
            DepthToSpaceOptions.AddBlockSize(b, block)
            return DepthToSpaceOptions.End(b)

        self.ops.append((BuiltinOperator.BuiltinOperator.DEPTH_TO_SPACE, [x], [y],
                         BuiltinOptions.BuiltinOptions.DepthToSpaceOptions, options))
        return y

    def serialize(self) -> bytes:
        b = flatbuffers.Builder(1024)

        def ints(start, values):
            start(b, len(values))
            for v in reversed(values):
                b.PrependInt32(v)
            return b.EndVector()

        def tables(start, offsets):
            start(b, len(offsets))
            for o in reversed(offsets):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        datas: list[bytes | None] = [None]  # buffer 0: the empty sentinel
        buffer_of = []
        for t in self.tensors:
            if t.data is None:
                buffer_of.append(0)
            else:
                datas.append(t.data)
                buffer_of.append(len(datas) - 1)
        buffers = []
        for d in datas:
            vec = None if d is None else b.CreateByteVector(d)
            Buffer.Start(b)
            if vec is not None:
                Buffer.AddData(b, vec)
            buffers.append(Buffer.End(b))

        tensors = []
        for t, buf in zip(self.tensors, buffer_of, strict=True):
            name = b.CreateString(t.name)
            shape = ints(Tensor.StartShapeVector, list(t.shape))
            QuantizationParameters.StartScaleVector(b, len(t.scale))
            for s in reversed(t.scale):
                b.PrependFloat32(s)
            scale = b.EndVector()
            QuantizationParameters.StartZeroPointVector(b, len(t.zero_point))
            for z in reversed(t.zero_point):
                b.PrependInt64(z)
            zero_point = b.EndVector()
            QuantizationParameters.Start(b)
            QuantizationParameters.AddScale(b, scale)
            QuantizationParameters.AddZeroPoint(b, zero_point)
            QuantizationParameters.AddQuantizedDimension(b, 0)
            quant = QuantizationParameters.End(b)
            Tensor.Start(b)
            Tensor.AddShape(b, shape)
            Tensor.AddType(b, t.dtype)
            Tensor.AddBuffer(b, buf)
            Tensor.AddName(b, name)
            Tensor.AddQuantization(b, quant)
            tensors.append(Tensor.End(b))

        codes = sorted({op[0] for op in self.ops})
        opcodes = []
        for c in codes:
            OperatorCode.Start(b)
            OperatorCode.AddDeprecatedBuiltinCode(b, min(c, 127))
            OperatorCode.AddBuiltinCode(b, c)
            OperatorCode.AddVersion(b, 1)
            opcodes.append(OperatorCode.End(b))

        operators = []
        for code, ins, outs, options_type, options in self.ops:
            in_vec = ints(Operator.StartInputsVector, ins)
            out_vec = ints(Operator.StartOutputsVector, outs)
            opts = options(b)
            Operator.Start(b)
            Operator.AddOpcodeIndex(b, codes.index(code))
            Operator.AddInputs(b, in_vec)
            Operator.AddOutputs(b, out_vec)
            Operator.AddBuiltinOptionsType(b, options_type)
            Operator.AddBuiltinOptions(b, opts)
            operators.append(Operator.End(b))

        tensor_vec = tables(SubGraph.StartTensorsVector, tensors)
        op_vec = tables(SubGraph.StartOperatorsVector, operators)
        in_vec = ints(SubGraph.StartInputsVector, self.inputs)
        out_vec = ints(SubGraph.StartOutputsVector, self.outputs)
        sg_name = b.CreateString("main")
        SubGraph.Start(b)
        SubGraph.AddTensors(b, tensor_vec)
        SubGraph.AddInputs(b, in_vec)
        SubGraph.AddOutputs(b, out_vec)
        SubGraph.AddOperators(b, op_vec)
        SubGraph.AddName(b, sg_name)
        subgraph = SubGraph.End(b)

        subgraphs = tables(Model.StartSubgraphsVector, [subgraph])
        opcode_vec = tables(Model.StartOperatorCodesVector, opcodes)
        buffer_vec = tables(Model.StartBuffersVector, buffers)
        description = b.CreateString("edgec test model")
        Model.Start(b)
        Model.AddVersion(b, 3)
        Model.AddOperatorCodes(b, opcode_vec)
        Model.AddSubgraphs(b, subgraphs)
        Model.AddDescription(b, description)
        Model.AddBuffers(b, buffer_vec)
        b.Finish(Model.End(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def write(net: Net, path: Path) -> Path:
    path.write_bytes(net.serialize())
    return path


def two_convs(*, first_stride=1, first_padding=SAME, names=("conv1/Relu", "conv2/Relu"),
              depth_to_space=False) -> Net:
    """input[1,16,16,8] -> CONV_2D(+RELU) -> CONV_2D(+RELU) [-> DEPTH_TO_SPACE]."""
    net = Net()
    x = net.input("input", (1, 16, 16, 8))
    y = net.conv(x, 16, names[0], stride=first_stride, padding=first_padding)
    y = net.conv(y, 16, names[1], seed=1)
    if depth_to_space:
        y = net.depth_to_space(y, "d2s/out")
    net.outputs = [y]
    return net


# ---- shared Vela runs ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tflite")
    return {
        "conv": write(two_convs(), d / "conv.tflite"),
        "d2s": write(two_convs(depth_to_space=True), d / "d2s.tflite"),
        # stride 5 with SAME padding: Vela leaves the conv on the CPU, and names it in its
        # warning by the output it gave the split-off convolution, 'c1_act'
        "stride5": write(two_convs(first_stride=5, names=("c1", "c2")), d / "stride5.tflite"),
        # stride 4 VALID: Vela decomposes the conv into 16 NPU ops named 'conv1/Relu_act'
        "stride4": write(two_convs(first_stride=4, first_padding=VALID), d / "stride4.tflite"),
    }


@pytest.fixture(scope="module")
def u55(models, tmp_path_factory) -> dict[str, vela.VelaResult]:
    out = tmp_path_factory.mktemp("vela_u55")
    return {name: compile_tflite(path, U55, out) for name, path in models.items()}


def test_vela_version():
    assert vela.vela_version() == "5.2.0"
    assert U55.label() == (
        "Vela 5.2.0 estimate for ethos-u55-128, Ethos_U55_High_End_Embedded, Shared_Sram")


def test_test_models_load_in_litert(models):
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")
    for name, path in models.items():
        it = interpreter_mod.Interpreter(model_path=str(path))
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], np.ones(inp["shape"], np.int8))
        it.invoke()
        out = it.get_output_details()[0]
        assert it.get_tensor(out["index"]).dtype == np.int8, name


def test_command_line():
    cmd = vela.vela_command(Path("/m/x.tflite"), U55, Path("/out"))
    assert cmd[1:5] == ["-P", "-m", "ethosu.vela", "/m/x.tflite"]
    for flag, value in [("--accelerator-config", "ethos-u55-128"),
                        ("--system-config", "Ethos_U55_High_End_Embedded"),
                        ("--memory-mode", "Shared_Sram"), ("--optimise", "Performance"),
                        ("--output-dir", "/out")]:
        assert cmd[cmd.index(flag) + 1] == value
    assert "--verbose-performance" in cmd and "--enable-debug-db" in cmd
    # the bundled vela.ini, by the <dir>/<file> form Vela resolves inside its config_files
    assert cmd[cmd.index("--config") + 1] == "Arm/vela.ini"
    assert vela.vela_ini().is_file()


def test_conv_compiles_onto_the_npu(u55):
    r = u55["conv"]
    assert r.ok and r.error == ""
    assert r.command_stream is not None and r.command_stream.name == "conv_vela.tflite"
    data = r.command_stream.read_bytes()
    assert data[4:8] == b"TFL3" and b"ethos-u" in data  # the NPU custom op
    assert [(lay.name, lay.op, lay.on_npu) for lay in r.layers] == [
        ("conv1/Relu", "CONV_2D", True), ("conv2/Relu", "CONV_2D", True)]
    # 16x16x16 outputs of 3x3 kernels over 8 then 16 channels
    assert [lay.macs for lay in r.layers] == [16 * 16 * 16 * 9 * 8, 16 * 16 * 16 * 9 * 16]
    assert all(lay.cycles > 0 and lay.reason == "" for lay in r.layers)
    assert r.macs == sum(lay.macs for lay in r.layers)
    assert r.cycles == sum(lay.cycles for lay in r.layers) > 0
    assert r.core_clock_hz == 500e6
    assert r.seconds == pytest.approx(r.cycles / 500e6)
    assert r.sram_bytes and r.sram_bytes > 0
    assert r.flash_bytes and r.flash_bytes >= r.weights_bytes > 0  # Shared_Sram: weights in flash
    assert r.vela_version == "5.2.0" and r.config == U55
    assert {"per_layer", "summary", "debug_db"} <= set(r.files)
    j = json.loads(json.dumps(r.to_json()))
    assert j["ok"] and j["cycles"] == r.cycles and j["config"]["accelerator"] == "ethos-u55-128"
    assert j["layers"][0] == {"name": "conv1/Relu", "op": "CONV_2D", "on_npu": True,
                              "macs": 294912, "cycles": r.layers[0].cycles, "reason": ""}
    assert j["npu_layers"] == 2 and j["cpu_layers"] == 0


def test_unsupported_op_falls_back_to_the_cpu_with_its_reason(u55):
    r = u55["d2s"]
    assert r.ok
    assert [lay.on_npu for lay in r.layers] == [True, True, False]
    d2s = r.layers[2]
    assert (d2s.name, d2s.op, d2s.macs, d2s.cycles) == ("d2s/out", "DEPTH_TO_SPACE", 0, 0)
    assert d2s.reason == "Unsupported opType"
    assert r.cpu_layers == [d2s]
    assert r.to_json()["cpu_layers"] == 1


def test_constraint_failure_reason_reaches_the_renamed_layer(u55):
    r = u55["stride5"]
    assert r.ok
    c1, c2 = r.layers
    assert (c1.name, c1.op, c1.on_npu, c1.cycles) == ("c1", "CONV_2D", False, 0)
    assert "Unsupported kernel stride: 5, 5" in c1.reason and "Stride>3" in c1.reason
    assert "\n" not in c1.reason
    assert c2.on_npu and c2.reason == "" and r.cycles == c2.cycles


def test_decomposed_op_is_one_layer(u55):
    r = u55["stride4"]
    assert r.ok
    assert [(lay.name, lay.on_npu) for lay in r.layers] == [("conv1/Relu", True),
                                                            ("conv2/Relu", True)]
    assert r.cycles == sum(lay.cycles for lay in r.layers)  # all 19 of Vela's rows accounted for
    # 16 sub-convolutions of 4x4x16 outputs, plus the 256 of the split-off RELU
    assert r.layers[0].macs == 4 * 4 * 16 * 9 * 8 + 256


@pytest.mark.parametrize("config", [
    VelaConfig("ethos-u65-256", "Ethos_U65_High_End", "Dedicated_Sram_384KB"),
    VelaConfig("ethos-u85-256", "Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram_384KB"),
    VelaConfig("ethos-u85-256", "Ethos_U85_SYS_Flash_High", "Shared_Sram", "Size"),
], ids=lambda c: c.accelerator)
def test_other_npus(models, tmp_path, config):
    r = compile_tflite(models["d2s"], config, tmp_path)
    assert r.ok, r.error
    assert r.cycles > 0 and r.seconds > 0 and r.command_stream.is_file()
    assert [lay.on_npu for lay in r.layers] == [True, True, False]
    assert r.layers[2].reason == "Unsupported opType"


def _failed(r: vela.VelaResult) -> None:
    assert not r.ok
    assert r.command_stream is None and r.layers == [] and r.cycles == 0
    assert r.error and "\n" not in r.error and "Traceback" not in r.error
    assert len(r.error) <= 300
    json.dumps(r.to_json())


def test_garbage_tflite_fails_in_one_line(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    r = compile_tflite(bad, U55, tmp_path / "out")
    _failed(r)
    assert r.error == (
        "Vela failed: RuntimeError: Compilation failed: No networks defined via GraphAPI")
    assert r.log is not None and "Traceback" in r.log.read_text()  # kept for debugging


def test_empty_and_missing_files_fail(tmp_path):
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    r = compile_tflite(empty, U55, tmp_path / "out")
    _failed(r)
    assert "empty file" in r.error
    r = compile_tflite(tmp_path / "nope.tflite", U55, tmp_path / "out")
    _failed(r)
    assert "no such file" in r.error


def test_a_failing_run_never_reports_a_previous_runs_files(models, tmp_path):
    out = tmp_path / "out"
    assert compile_tflite(models["conv"], U55, out).ok
    bad = tmp_path / "conv.tflite"  # the same stem, now garbage
    bad.write_bytes(b"not a flatbuffer at all" * 20)
    _failed(compile_tflite(bad, U55, out))
    assert not (out / "conv_vela.tflite").exists()


def test_timeout_fails(models, tmp_path):
    r = compile_tflite(models["conv"], U55, tmp_path, timeout=0.01)
    _failed(r)
    assert r.error == "Vela timed out after 0.01 s on conv.tflite"


@pytest.mark.parametrize("config, words", [
    (VelaConfig("ethos-u55-7", "Ethos_U55_High_End_Embedded", "Shared_Sram"),
     ["--accelerator-config", "ethos-u55-7"]),
    (VelaConfig("ethos-u55-128", "No_Such_System", "Shared_Sram"), ["No_Such_System"]),
    (VelaConfig("ethos-u55-128", "Ethos_U55_High_End_Embedded", "Dedicated_Sram"),
     ["arena_mem_area=OffChipFlash"]),
])
def test_vela_rejecting_its_options_fails(models, tmp_path, config, words):
    r = compile_tflite(models["conv"], config, tmp_path)
    _failed(r)
    assert r.error.startswith("Vela failed: ")
    for word in words:
        assert word in r.error


def test_failure_line():
    assert vela._failure_line(-11, "", "") == "Vela crashed (SIGSEGV)"
    assert vela._failure_line(1, "Error: Allocation failed: too big\n", "") == (
        "Vela failed: Allocation failed: too big")
    assert vela._failure_line(3, "", "  \nsomething odd happened\n") == (
        "Vela exited with status 3: something odd happened")
    assert vela._failure_line(1, "", "") == "Vela exited with status 1"


def test_cpu_warnings_parse_both_cores():
    regor = ("Warning (supported operators) operator: CONV_2D, ofm: 'a/b_act'\n"
             "Reason: Unsupported kernel stride: 5, 5\n"
             "Stride>3 is only supported IF (dilation = 1 AND padding = VALID)\n\n"
             "Warning (supported operators) operator: DEPTH_TO_SPACE, ofm: 'd, 2'\n"
             "Reason: Unsupported opType\n\n####\nPerformance for NPU Graph x\n")
    assert vela._parse_cpu_warnings(regor) == [
        ("CONV_2D", "a/b_act", "Unsupported kernel stride: 5, 5; "
                               "Stride>3 is only supported IF (dilation = 1 AND padding = VALID)"),
        ("DEPTH_TO_SPACE", "d, 2", "Unsupported opType")]
    legacy = ("Warning: TANH 't/out' is not supported on the NPU. Placing on CPU instead\n"
              " - Input(s) and Output tensors must not be dynamic\n"
              "   Op has dynamic tensor(s): t/in\n")
    assert vela._parse_cpu_warnings(legacy) == [
        ("TANH", "t/out", "Input(s) and Output tensors must not be dynamic; "
                          "Op has dynamic tensor(s): t/in")]


# ---- target tables ----------------------------------------------------------------------------


def _table(**overrides):
    table = {"accelerator": "ethos-u55-128", "system_config": "Ethos_U55_High_End_Embedded",
             "memory_mode": "Shared_Sram"}
    table.update(overrides)
    return {k: v for k, v in table.items() if v is not None}


def test_from_table_accepts_valid_tables():
    assert VelaConfig.from_table(_table(), WHERE) == U55
    c = VelaConfig.from_table(_table(accelerator="ethos-u85-512",
                                     system_config="Ethos_U85_SYS_DRAM_High",
                                     memory_mode="Dedicated_Sram_512KB", optimise="Size"), WHERE)
    assert c.to_json() == {"accelerator": "ethos-u85-512",
                           "system_config": "Ethos_U85_SYS_DRAM_High",
                           "memory_mode": "Dedicated_Sram_512KB", "optimise": "Size"}


@pytest.mark.parametrize("overrides, words", [
    ({"arena": "1MB"},
     ["unknown key 'arena'", "accelerator, system_config, memory_mode, optimise"]),
    ({"accelerator": "ethos-u55-100"},
     ["unknown accelerator 'ethos-u55-100'", "ethos-u55-32", "ethos-u65-512", "ethos-u85-2048"]),
    ({"accelerator": "Ethos_U55_128"}, ["unknown accelerator 'Ethos_U55_128'"]),
    ({"system_config": "Ethos_U55_Low_End"},
     ["system_config 'Ethos_U55_Low_End'", "Ethos_U55_Deep_Embedded", "Ethos_U85_SYS_DRAM_High"]),
    ({"memory_mode": "Shared"}, ["memory_mode 'Shared'", "Sram_Only", "Dedicated_Sram_512KB"]),
    ({"optimise": "Speed"}, ["optimise 'Speed'", "Performance, Size"]),
    ({"memory_mode": None}, ["missing key 'memory_mode'"]),
    ({"accelerator": 128}, ["accelerator must be a string"]),
    # Vela's own check: a Dedicated_Sram arena cannot live in a read-only flash
    ({"memory_mode": "Dedicated_Sram"},
     ["memory_mode 'Dedicated_Sram'", "Ethos_U55_High_End_Embedded", "arena_mem_area"]),
])
def test_from_table_rejects_bad_tables(overrides, words):
    with pytest.raises(UsageError) as e:
        VelaConfig.from_table(_table(**overrides), WHERE)
    message = str(e.value)
    assert message.startswith(WHERE + ": ") and message.endswith("; fix the target file")
    assert "\n" not in message
    for word in words:
        assert word in message


def test_ini_sections():
    assert "Ethos_U55_High_End_Embedded" in vela.system_configs()
    assert "Ethos_U85_SYS_DRAM_Mid" in vela.system_configs()
    assert vela.memory_modes()[:2] == ("Sram_Only", "Shared_Sram")
    assert "ethos-u85-256" in vela.accelerators()


def test_missing_vela_is_a_toolchain_error(monkeypatch):
    monkeypatch.setattr(vela.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ToolchainError, match="pip install ethos-u-vela"):
        compile_tflite(Path("x.tflite"), U55, Path("out"))
