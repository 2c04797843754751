"""Layer factories shared by the quantized generators and their float twins.

Every generator is written once against these factories; ``quantized=False`` gives the float twin
with the same architecture, so the cost of quantization is measured on identical networks.

The quantizers are chosen for the integer-semantics contract (ARCHITECTURE.md): every scale is a
power of two and there is no batch norm, so each value reaching a quantizer is an exact dyadic
number in float32. PyTorch, qonnx and ONNX Runtime then round identical numbers, whatever order
their convolutions accumulate in, and the output codes agree bit for bit. Hidden activations share
one constant scale, so branches joined by a skip-connection concat are already on the same grid
(no rescaling node for the FPGA to stream).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class QuantSpec:
    """Bit widths of one generator. ``None`` in a model means the float twin."""

    weight_bits: int = 4
    act_bits: int = 4
    io_bits: int = 8  # input quantizer, first and last layer weights, output quantizer
    act_max: float = 4.0  # hidden activations live in [0, act_max): scale act_max / 2**act_bits
    # False: every hidden activation on one constant grid. True: each ReLU learns its own
    # power-of-two scale (initialised at act_max), tied across the two inputs of a skip concat.
    learned_act_scale: bool = False


def _brevitas():
    # Imported lazily so that building a float twin does not pay for Brevitas.
    import brevitas.nn as qnn
    from brevitas.core.scaling import ScalingImplType
    from brevitas.quant.fixed_point import (
        Int8ActPerTensorFixedPointMinMaxInit,
        Int8BiasPerTensorFixedPointInternalScaling,
        Int8WeightPerChannelFixedPoint,
        Uint8ActPerTensorFixedPointMaxInit,
    )

    return (qnn, ScalingImplType, Int8ActPerTensorFixedPointMinMaxInit,
            Int8BiasPerTensorFixedPointInternalScaling, Int8WeightPerChannelFixedPoint,
            Uint8ActPerTensorFixedPointMaxInit)


def _const_uint_quant(bits: int, max_val: float):
    """Unsigned activation quantizer with a constant power-of-two scale ``max_val / 2**bits``."""
    _, ScalingImplType, _, _, _, UintMaxInit = _brevitas()

    return UintMaxInit.let(scaling_impl_type=ScalingImplType.CONST, bit_width=bits, max_val=max_val)


def _const_int_quant(bits: int, max_val: float):
    """Signed activation quantizer with a constant power-of-two scale ``max_val / 2**(bits-1)``."""
    _, ScalingImplType, IntMinMax, _, _, _ = _brevitas()

    return IntMinMax.let(scaling_impl_type=ScalingImplType.CONST, bit_width=bits,
                         min_val=-max_val, max_val=max_val)


def _bias_quant():
    _, _, _, Bias, _, _ = _brevitas()

    return Bias.let(bit_width=16)


def conv2d(cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, *,
           spec: QuantSpec | None, weight_bits: int | None = None, bias: bool = True) -> nn.Module:
    """A 2D convolution: Brevitas with per-channel power-of-two weight scales, or float."""
    if spec is None:
        return nn.Conv2d(cin, cout, k, stride, padding, bias=bias)
    qnn, _, _, _, WeightQuant, _ = _brevitas()
    return qnn.QuantConv2d(cin, cout, k, stride, padding, bias=bias,
                           weight_quant=WeightQuant, weight_bit_width=weight_bits or spec.weight_bits,
                           bias_quant=_bias_quant() if bias else None)


def conv_transpose2d(cin: int, cout: int, k: int, stride: int, padding: int, *,
                     spec: QuantSpec | None, weight_bits: int | None = None,
                     bias: bool = True) -> nn.Module:
    """A 2D transposed convolution, quantized like :func:`conv2d`."""
    if spec is None:
        return nn.ConvTranspose2d(cin, cout, k, stride, padding, bias=bias)
    qnn, _, _, _, WeightQuant, _ = _brevitas()
    return qnn.QuantConvTranspose2d(cin, cout, k, stride, padding, bias=bias,
                                    weight_quant=WeightQuant,
                                    weight_bit_width=weight_bits or spec.weight_bits,
                                    bias_quant=_bias_quant() if bias else None)


def relu(spec: QuantSpec | None, share_scale_with: nn.Module | None = None) -> nn.Module:
    """Hidden activation: a ReLU quantized to ``act_bits`` unsigned with a power-of-two scale.

    ``share_scale_with`` (another quantized ReLU) makes both use one quantizer, so the two
    branches of a skip-connection concat stay on the same integer grid.
    """
    if spec is None:
        return nn.ReLU()
    qnn = _brevitas()[0]
    if share_scale_with is not None and spec.learned_act_scale:
        return qnn.QuantReLU(act_quant=share_scale_with.act_quant)
    if spec.learned_act_scale:
        UintMaxInit = _brevitas()[5]
        return qnn.QuantReLU(act_quant=UintMaxInit.let(bit_width=spec.act_bits, max_val=spec.act_max))
    return qnn.QuantReLU(act_quant=_const_uint_quant(spec.act_bits, spec.act_max))


def image_input(spec: QuantSpec | None) -> nn.Module:
    """Input quantizer for images: uint8 pixel codes p enter as p / 256, exactly representable."""
    if spec is None:
        return nn.Identity()
    qnn = _brevitas()[0]
    return qnn.QuantIdentity(act_quant=_const_uint_quant(spec.io_bits, 1.0))


def latent_input(spec: QuantSpec | None, max_abs: float = 4.0) -> nn.Module:
    """Input quantizer for a latent vector: signed ``io_bits`` on [-max_abs, max_abs)."""
    if spec is None:
        return nn.Hardtanh(-max_abs, max_abs)
    qnn = _brevitas()[0]
    return qnn.QuantIdentity(act_quant=_const_int_quant(spec.io_bits, max_abs))


class StraightThroughClamp(nn.Module):
    """Clamp forward, identity backward: the float twin of a straight-through output quantizer."""

    def __init__(self, lo: float, hi: float) -> None:
        super().__init__()
        self.lo, self.hi = lo, hi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (x.clamp(self.lo, self.hi) - x).detach()


def image_output(spec: QuantSpec | None, straight_through: bool = False) -> nn.Module:
    """Output quantizer: [0, 1) in steps of 1/256, so the output codes are the 8-bit pixels.

    ``straight_through`` lets gradients pass saturated pixels. An unconditional GAN needs it: once
    its generator pushes the white background past 1.0, a plain clamp blocks every gradient there
    and training never recovers. The forward result is the same either way.
    """
    hi = 1.0 - 1.0 / 256
    if spec is None:
        return StraightThroughClamp(0.0, hi) if straight_through else nn.Hardtanh(0.0, hi)
    qnn = _brevitas()[0]
    quant = _const_uint_quant(spec.io_bits, 1.0)
    if straight_through:
        from brevitas.core.function_wrapper.ops_ste import TensorClampSte

        quant = quant.let(tensor_clamp_impl=TensorClampSte)
    return qnn.QuantIdentity(act_quant=quant)


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass (convolutions only), for reports and benchmarks."""
    total = 0

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal total
        x = inputs[0]
        if isinstance(module, nn.ConvTranspose2d):
            # Each input pixel scatters k*k*Cout products (zero-free count).
            total += x[0].numel() * module.out_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.Conv2d):
            total += output[0].numel() * (module.in_channels // module.groups) * \
                module.kernel_size[0] * module.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        model(example[:1])
    for h in handles:
        h.remove()
    return total


def init_for_relu(model: nn.Module) -> None:
    """He-normal init by the fan-in each output really sees (k*k/s*s taps for a transposed conv).

    With a constant-scale 4-bit ReLU (step 0.25), PyTorch's default init shrinks activations layer
    by layer until they all round to zero and a deep generator starts dead; this keeps them O(1).
    """
    for m in model.modules():
        if isinstance(m, nn.ConvTranspose2d):
            s = m.stride[0] * m.stride[1]
            fan_in = max(1, m.in_channels * m.kernel_size[0] * m.kernel_size[1] // s)
        elif isinstance(m, nn.Conv2d):
            fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        else:
            continue
        nn.init.normal_(m.weight, 0.0, (2.0 / fan_in) ** 0.5)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
