"""The generators users bring, compiled and simulated: DCGAN with BatchNorm, pix2pix U-Net,
CycleGAN ResNet, SRGAN-style super-resolution, a conditional generator.

The models come from :mod:`tests.reference_generators`, written in plain Brevitas without any of
fpga_gan's own layers. Each one is exported as a user would, compiled for kv260 (and pynq-z2),
checked bit-exact at every compile stage by the pipeline itself, and simulated in Verilator under
random backpressure against FINN's Python execution of the same partition.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fpga_gan.compiler.pipeline import CompileConfig, compile_model

from . import reference_generators as ref
from .test_compiler import _assert_all_rtl_one_partition

ARCHITECTURES = list(ref.REFERENCE)
# Reference generators the compiler does not take yet, and why (the tests below expect the refusal,
# strictly: when a gap closes, the xfail turns into a failure and this table must shrink).
KNOWN_GAPS: dict[str, str] = {}      # none today: every reference generator compiles


def _arch_params() -> list:
    return [pytest.param(name, marks=pytest.mark.xfail(reason=KNOWN_GAPS[name], strict=True))
            if name in KNOWN_GAPS else name for name in ARCHITECTURES]


def _quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reference")
    return {name: ref.export(name, root / f"{name}.onnx") for name in ARCHITECTURES}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_brevitas_and_qonnx_give_identical_outputs(exported, name):
    """The contract's first link: PyTorch (Brevitas) and qonnx execution of the exported file agree
    exactly, on several inputs, before the compiler is involved."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    model = ref.build(name)
    qonnx_model = cleanup_model(ModelWrapper(str(exported[name])))
    static = {i.name for i in qonnx_model.graph.initializer}
    names = [i.name for i in qonnx_model.graph.input if i.name not in static]
    torch.manual_seed(7)
    for _ in range(4):
        inputs = ref.REFERENCE[name][1]()
        with torch.no_grad():
            expected = model(*inputs).numpy()
        got = execute_onnx(qonnx_model, {n: t.numpy() for n, t in zip(names, inputs)})
        np.testing.assert_array_equal(got[qonnx_model.graph.output[0].name], expected)


@pytest.fixture(scope="module")
def kv260_builds(exported, tmp_path_factory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("reference_kv260")
    from fpga_gan.compiler.errors import CompileError

    results = {}
    for name in ARCHITECTURES:
        try:
            results[name] = compile_model(CompileConfig(model=str(exported[name]), board="kv260",
                                                        out_dir=root / name, log=_quiet))
        except CompileError as err:
            if name not in KNOWN_GAPS:
                raise
            results[name] = err
    return results


@pytest.mark.parametrize("name", _arch_params())
def test_reference_generator_compiles_for_kv260_bit_exactly(kv260_builds, name):
    result = kv260_builds[name]
    if isinstance(result, Exception):
        raise result
    _assert_all_rtl_one_partition(result)
    assert result.report["fits"]


def test_reference_blocks_are_the_hardware_layers_expected(kv260_builds):
    built = [name for name in ARCHITECTURES if name not in KNOWN_GAPS]
    ops = {name: {n["op_type"] for n in kv260_builds[name].report["nodes"]} for name in built}
    assert "StreamingConcat_rtl" in ops["pix2pix"] and "StreamingConcat_rtl" in ops["conditional"]
    assert "UpsampleNearest_rtl" in ops["conditional"]          # the label, tiled to planes on the fabric
    srgan = [n["op_type"] for n in kv260_builds["srgan"].report["nodes"]]
    # the PReLU behind the PixelShuffle became thresholds in front of it: the DepthToSpace streams codes
    assert srgan[srgan.index("DepthToSpace_rtl") - 1] == "Thresholding_rtl" and "ElementwiseAdd_rtl" in srgan
    for name in ("dcgan_bn", "pix2pix", "conditional"):         # zero-free transposed convolutions
        for deconv in kv260_builds[name].report["deconv"]:
            assert deconv["macs_zero_free"] == deconv["macs_useful"]


@pytest.mark.slow     # five more compiles: `make test-all`
@pytest.mark.parametrize("name", _arch_params())
def test_reference_generator_compiles_for_pynq_z2_or_says_why_not(exported, tmp_path, name):
    from fpga_gan.compiler.errors import CompileError

    try:
        result = compile_model(CompileConfig(model=str(exported[name]), board="pynq-z2",
                                             out_dir=tmp_path / "build", log=_quiet))
    except CompileError as err:
        assert "does not fit" in str(err)          # the only acceptable refusal: the board's budget
        return
    _assert_all_rtl_one_partition(result)


# every reference generator is simulated in `make test` (about 7 minutes together on 2 cores: the
# Verilator builds): they are shaped like the generators users bring
@pytest.mark.parametrize("name", [name for name in ARCHITECTURES if name not in KNOWN_GAPS])
def test_reference_generator_simulates_bit_exactly_under_backpressure(kv260_builds, name):
    from fpga_gan.sim.run import simulate

    report = simulate(kv260_builds[name].build_dir, frames=2, backpressure=0.3, log=_quiet)
    assert report["frames"] == 4 and report["mismatches"] == 0       # 2 at full rate + 2 under backpressure
