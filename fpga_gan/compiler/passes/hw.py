"""Turn the streamlined NHWC graph into hardware layers, and pick the RTL implementation of each.

FINN infers its own layers (thresholding, MVAU, sliding window + padding, crop). The skip
connections need stream forks and channel concatenation, which finn-plus has only as HLS; they
become fpga_gan's RTL ops (:mod:`fpga_gan.ops`). Everything that is still not a hardware layer
afterwards, between the input and the output scale, is reported by :func:`unsupported_nodes`.
"""

from __future__ import annotations

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

from ...ops import DOMAIN, FINN_RTL_DOMAIN
from ...ops.registry import op_passes
from .phases import SplitSubPixelPhases
from .residual import InferResidualAdd, WidenResidualAddInputs, specialize_residual_adds

__all__ = ["ConvertToGANHWLayers", "InferStreamingConcat", "InferDuplicateStreams", "PropagateCropDatatypes", "specialize_rtl",
           "unsupported_nodes"]

_FINN_HW = "finn.custom_op.fpgadataflow"
# What may stay outside the dataflow partition: layout changes and the output scale at the ends.
_BOUNDARY_OPS = {"Transpose", "Mul", "Reshape"}
_WHAT_TO_CHANGE = {
    "ConvTranspose": "use group=1, dilation 1 and equal strides (any kernel, padding, output_padding)",
    "Resize": "use nearest upsampling by an integer factor followed by a convolution",
    "MultiThreshold": "keep activations quantized with per-tensor power-of-two scales",
    "Mul": "use power-of-two scales and no batch norm between convolution and activation",
    "Add": ("fold the bias into the convolution; a residual add needs both inputs quantized (QuantIdentity / "
            "QuantReLU) with power-of-two scales, best one shared quantizer"),
    "Conv": "use quantized weights (Brevitas QuantConv2d) and a quantized input",
    "MatMul": "use quantized weights and a quantized input",
}
# a tanh / sigmoid becomes thresholds only as part of the chain between an integer root and a quantizer
# (passes/thresholds.py); one left here was not on such a chain
_WHAT_TO_CHANGE["Tanh"] = _WHAT_TO_CHANGE["Sigmoid"] = (
    "quantize its output directly (QuantIdentity) and feed it from a convolution on quantized codes (zero, "
    "reflection or replication padding in between is fine) through per-channel monotone ops only")


def _is_nhwc_4d(model: ModelWrapper, name: str) -> bool:
    shape = model.get_tensor_shape(name)
    return shape is not None and len(shape) == 4


class InferStreamingConcat(Transformation):
    """Channel Concat of NHWC streams -> fpga_gan ``StreamingConcat``."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            if node.op_type != "Concat" or node.domain:
                continue
            axis = helper.get_attribute_value(get_by_name(node.attribute, "axis"))
            if not all(_is_nhwc_4d(model, i) for i in node.input) or axis not in (3, -1):
                continue
            shapes = [model.get_tensor_shape(i) for i in node.input]
            dtypes = {model.get_tensor_datatype(i) for i in node.input}
            if len(dtypes) != 1 or not next(iter(dtypes)).is_integer():
                continue
            new = helper.make_node("StreamingConcat", list(node.input), list(node.output), domain=DOMAIN,
                                   backend="fpgadataflow", name=node.name, ImgDim=list(shapes[0][1:3]),
                                   ChannelsPerStream=[s[3] for s in shapes],
                                   inputDataType=next(iter(dtypes)).name)
            at = list(model.graph.node).index(node)
            model.graph.node.remove(node)
            model.graph.node.insert(at, new)
            return model, True
        return model, False


class InferDuplicateStreams(Transformation):
    """A stream read by several hardware layers -> fpga_gan ``DuplicateStreams`` feeding each.

    Graph inputs count as streams too; a node reading one stream on two inputs gets two copies.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        streams = [i.name for i in model.graph.input] + [o for n in model.graph.node for o in n.output]
        for out in streams:
            readers, seen = [], set()
            for consumer in model.find_consumers(out) or []:      # lists a node once per read
                for index, name in enumerate(consumer.input):
                    if name == out and (id(consumer), index) not in seen:
                        seen.add((id(consumer), index))
                        readers.append((consumer, index))
            if len(readers) < 2 or not _is_nhwc_4d(model, out):
                continue
            _, h, w, c = model.get_tensor_shape(out)
            dtype = model.get_tensor_datatype(out)
            copies = [model.make_new_valueinfo_name() for _ in readers]
            for copy, (consumer, index) in zip(copies, readers):
                model.set_tensor_shape(copy, [1, h, w, c])
                model.set_tensor_datatype(copy, dtype)
                consumer.input[index] = copy
            dup = helper.make_node("DuplicateStreams", [out], copies, domain=DOMAIN, backend="fpgadataflow",
                                   name=f"DuplicateStreams_{out}", ImgDim=[h, w], NumChannels=c,
                                   NumOutputStreams=len(copies), inputDataType=dtype.name)
            producer = model.find_producer(out)
            at = list(model.graph.node).index(producer) + 1 if producer is not None else 0
            model.graph.node.insert(at, dup)
            return model, True
        return model, False


class ConvertToGANHWLayers(Transformation):
    """FINN's layer inference in its builder's order, then the skip-connection ops, then the
    per-phase split of cropped sub-pixel convolutions (:mod:`.phases`)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
        from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
            InferQuantizedMatrixVectorActivation,
        )
        from finn.transformation.fpgadataflow.convert_to_hw.thresholding import InferThresholdingLayer

        # thresholds first, so they stay standalone layers (MVAU_rtl has no built-in activation)
        from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
        from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth
        from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds

        for t in (*op_passes("infer"),      # each fpga_gan op's own layer inference (fpga_gan.ops.registry)
                  WidenResidualAddInputs(),  # residual adds: both inputs on one datatype (.residual)
                  InferThresholdingLayer(), InferQuantizedMatrixVectorActivation(), InferConvInpGen(),
                  InferStreamingConcat(), InferResidualAdd(), InferDuplicateStreams(),
                  # integer thresholds inside their input's range first: FINN's Thresholding
                  # asserts thresholds >= 0 on an unsigned input when it sizes its weights
                  RoundAndClipThresholds(),
                  # the narrowest weight / accumulator types (RTL needs them), as FINN's builder
                  # does before specialization
                  MinimizeWeightBitWidth(), MinimizeAccumulatorWidth()):
            model = model.transform(t)
        # after the bit widths are final, so every phase keeps the original's stream types
        model = model.transform(SplitSubPixelPhases()).transform(InferDuplicateStreams())
        model = model.transform(PropagateCropDatatypes()).transform(RoundAndClipThresholds())
        model = model.transform(GiveUniqueNodeNames()).transform(InferShapes())
        return model.transform(PropagateCropDatatypes()), False


class PropagateCropDatatypes(Transformation):
    """Datatype inference that also carries types through FINN's Crop.

    finn-plus' ``Crop.infer_node_datatype`` updates its attribute but not its output tensor, so
    after the accumulators are narrowed the layer behind a crop keeps the old (or FLOAT32) type
    and in hardware reads a stream of the wrong width. Runs InferDataTypes to a fixed point with
    the crop outputs set to their input types.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for _ in range(len(model.graph.node) + 1):
            model = model.transform(InferDataTypes())
            stale = [n for n in model.graph.node if n.op_type.startswith("Crop")
                     and model.get_tensor_datatype(n.output[0]) != model.get_tensor_datatype(n.input[0])]
            if not stale:
                break
            for node in stale:
                model.set_tensor_datatype(node.output[0], model.get_tensor_datatype(node.input[0]))
        return model, False


def _is_hw(node) -> bool:
    backend = get_by_name(node.attribute, "backend")
    return backend is not None and helper.get_attribute_value(backend) in (b"fpgadataflow", "fpgadataflow")


def unsupported_nodes(model: ModelWrapper) -> list[str]:
    """One line per node that is neither a hardware layer nor a layout / scale op at the graph's ends."""
    nodes = list(model.graph.node)
    hw = [i for i, n in enumerate(nodes) if _is_hw(n)]
    if not hw:
        return ["no node became a hardware layer: is the model quantized (Brevitas QuantConv2d / QuantReLU)?"]
    problems = []
    for i, node in enumerate(nodes):
        if _is_hw(node):
            continue
        inside = hw[0] < i < hw[-1]
        if not inside and node.op_type in _BOUNDARY_OPS:
            continue
        hint = _WHAT_TO_CHANGE.get(node.op_type, "replace it with a layer FINN can stream (conv, ReLU, concat)")
        where = "between hardware layers" if inside else "at the graph boundary"
        problems.append(f"{node.op_type} node {node.name!r} ({where}) has no streaming implementation; {hint}")
    return problems


def why_not_rtl(model: ModelWrapper, node, fpgapart: str) -> str:
    """The reason FINN's RTL MVU cannot take an MVAU node (FINN's own rules, spelled out), and the fix."""
    import numpy as np
    from finn.util.basic import get_dsp_block, get_dsp_datapath_limits
    from qonnx.custom_op.registry import getCustomOp

    if not node.op_type.startswith("MVAU"):
        return "FINN has no RTL implementation of this layer"
    inst = getCustomOp(node)
    idt, wdt, odt = inst.get_input_datatype(0), inst.get_input_datatype(1), inst.get_output_datatype()
    block = get_dsp_block(fpgapart)
    max_act, max_weight, max_acc = get_dsp_datapath_limits(block)
    weights = model.get_initializer(node.input[1])
    reasons = []
    if not wdt.signed():
        reasons.append(f"weights are {wdt.name} (unsigned); use signed weight quantizers")
    if min(idt.bitwidth(), wdt.bitwidth()) < 2:
        reasons.append(f"{idt.name} x {wdt.name}: 1-bit operands are not supported; use 2 bits or more")
    if block == "DSP48E1" and weights is not None and np.min(weights) == wdt.min():
        reasons.append(f"weights reach {wdt.min():g}, the full range of {wdt.name}; {block} (Zynq-7000) needs "
                       "narrow-range weights: quantize them with narrow_range=True")
    if idt.bitwidth() - int(idt.signed()) >= max_act or wdt.bitwidth() > max_weight or odt.bitwidth() > max_acc:
        reasons.append(f"activation {idt.name}, weight {wdt.name}, accumulator {odt.name} exceed the {block} datapath "
                       f"({max_act}/{max_weight}/{max_acc} bits); use 8 bits or fewer")
    return "; ".join(reasons) or "FINN chose HLS for this layer"


def specialize_rtl(model: ModelWrapper, fpgapart: str) -> ModelWrapper:
    """Choose RTL for every layer: FINN's SpecializeLayers for its nodes, ``*_rtl`` for ours."""
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    for node in model.graph.node:
        if node.domain == _FINN_HW:
            style = get_by_name(node.attribute, "preferred_impl_style")
            if style is not None:
                node.attribute.remove(style)
            node.attribute.append(helper.make_attribute("preferred_impl_style", "rtl"))
    model = specialize_residual_adds(model).transform(SpecializeLayers(fpgapart))
    for node in model.graph.node:
        if node.domain == DOMAIN and not node.op_type.endswith("_rtl"):
            node.op_type += "_rtl"
            node.domain = FINN_RTL_DOMAIN            # see fpga_gan.ops.registry.register_op
    return model.transform(GiveUniqueNodeNames()).transform(InferShapes()).transform(InferDataTypes())
