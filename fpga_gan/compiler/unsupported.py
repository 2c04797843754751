"""Layers no streaming RTL layer computes, found on the user's QONNX graph before any FINN pass.

Why check early: these layers otherwise travel through tidy, conversion and streamlining and
surface as an assertion deep in FINN, or as a node left outside the dataflow partition, many
minutes and several stages later, with a message about the symptom. Checked on the graph as it was
exported, every offending node is named at once, with what to use instead.

The rules are about graph patterns (an op, a product of two run-time tensors, a nonlinearity
whose output reaches other arithmetic before it is quantized again), never about particular models.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper

__all__ = ["unsupported_layers"]

_NORM_FIX = ("normalisation statistics computed at run time have no streaming layer: use BatchNorm2d (it folds "
             "into the thresholds at inference) or remove the normalisation")
_ATTENTION_FIX = ("attention (a product of two run-time tensors, or a softmax) is not streamed by the RTL layers: "
                  "use convolutions, or run the attention block on the CPU outside the compiled generator")
_SQUASH_FIX = ("a {op} whose output is quantized again has no streaming layer: use a quantized hard-tanh / hard "
               "sigmoid (Brevitas QuantHardTanh; FINN turns it into thresholds), or put the {op} after the "
               "output quantizer, where the runtime applies it on the CPU")

#: op type -> (what it is, what to use instead); ops that are never streamed, wherever they are.
_NEVER = {
    "InstanceNormalization": ("InstanceNorm", _NORM_FIX),
    "LayerNormalization": ("LayerNorm", _NORM_FIX),
    "GroupNormalization": ("GroupNorm", _NORM_FIX),
    "Softmax": ("softmax (attention)", _ATTENTION_FIX),
    "LogSoftmax": ("log-softmax", _ATTENTION_FIX),
    "Einsum": ("einsum (attention)", _ATTENTION_FIX),
    "LSTM": ("LSTM", "recurrent layers are not streamed: use convolutions"),
    "GRU": ("GRU", "recurrent layers are not streamed: use convolutions"),
    "RNN": ("RNN", "recurrent layers are not streamed: use convolutions"),
}
_PRODUCTS = {"MatMul", "Gemm", "Conv", "Mul"}
_SQUASHES = {"Sigmoid": "sigmoid", "Tanh": "tanh", "HardSigmoid": "float hard sigmoid", "Softplus": "softplus",
             "Erf": "GELU (erf)", "Exp": "exp"}
_RESIZES = {"Resize", "Upsample"}


def _attr(node, name: str, default=None):
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _dynamic_tensors(model: ModelWrapper) -> set[str]:
    """Tensors that depend on the graph input (the rest are weights or constants)."""
    static = {i.name for i in model.graph.initializer}
    dynamic = {i.name for i in model.graph.input if i.name not in static}
    for node in model.graph.node:            # ONNX lists nodes in topological order
        if any(t in dynamic for t in node.input):
            dynamic.update(node.output)
    return dynamic


def _reaches_quant(model: ModelWrapper, tensor: str) -> bool:
    """Whether a Quant node (another quantizer) lies downstream of ``tensor``."""
    todo, seen = [tensor], set()
    while todo:
        name = todo.pop()
        for consumer in model.find_consumers(name) or []:
            if consumer.op_type in ("Quant", "BipolarQuant", "Trunc"):
                return True
            for out in consumer.output:
                if out not in seen:
                    seen.add(out)
                    todo.append(out)
    return False


def _quantized_directly(model: ModelWrapper, tensor: str) -> bool:
    """Whether every reader of ``tensor`` is a quantizer: a monotone squash (tanh, sigmoid) quantized
    right away is a staircase of the value before it, which the thresholds compute exactly
    (:mod:`fpga_gan.compiler.passes.thresholds`); only a squash feeding other arithmetic is refused."""
    consumers = model.find_consumers(tensor) or []
    return bool(consumers) and all(c.op_type == "Quant" for c in consumers)


def _norm_name(model: ModelWrapper, node) -> str:
    """InstanceNormalization behind a Reshape is how PyTorch exports GroupNorm."""
    producer = model.find_producer(node.input[0])
    return "GroupNorm" if producer is not None and producer.op_type == "Reshape" else "InstanceNorm"


def unsupported_layers(model: ModelWrapper) -> list[str]:
    """One line per node of the exported graph that no RTL layer streams: name, op, why, what instead."""
    dynamic = _dynamic_tensors(model)
    problems = []
    for node in model.graph.node:
        head = f"{node.op_type} node {node.name!r}"
        if node.op_type in _NEVER:
            what, fix = _NEVER[node.op_type]
            if node.op_type == "InstanceNormalization":
                what = _norm_name(model, node)
            problems.append(f"{head} ({what}): {fix}")
        elif node.op_type in _PRODUCTS and len(node.input) >= 2 and all(t in dynamic for t in node.input[:2]):
            problems.append(f"{head} multiplies two run-time tensors ({node.input[0]!r} and {node.input[1]!r}): "
                            f"{_ATTENTION_FIX}")
        elif node.op_type in ("Div", "Sqrt", "Reciprocal") and node.input[-1] in dynamic \
                and (node.op_type != "Div" or node.input[1] in dynamic):
            problems.append(f"{head} divides by / takes the root of a run-time tensor (a normalisation such as "
                            f"LayerNorm or GroupNorm as the exporter writes it): {_NORM_FIX}")
        elif node.op_type in _SQUASHES and _reaches_quant(model, node.output[0]) \
                and not _quantized_directly(model, node.output[0]):
            op = _SQUASHES[node.op_type]
            problems.append(f"{head} ({op} inside the network): {_SQUASH_FIX.format(op=op)}")
        elif node.op_type in _RESIZES:
            mode = _attr(node, "mode", "nearest")
            if mode != "nearest":
                problems.append(f"{head} upsamples with mode {mode!r}: only nearest upsampling streams (it becomes "
                                "a transposed convolution); use nn.Upsample(mode='nearest') followed by a "
                                "convolution, or a transposed convolution")
    return problems
