"""Shared machinery of the fpga_gan streaming ops: datatypes, resource models, RTL templating.

Every op here follows FINN's pattern: a backend-neutral ``HWCustomOp`` subclass whose
``execute_node`` is the golden numpy model, plus a thin ``*_rtl`` subclass (also ``RTLBackend``)
that fills a wrapper template from ``hw/rtl/`` and copies the core module next to it.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from qonnx.core.datatype import DataType
from qonnx.util.basic import roundup_to_integer_multiple

DOMAIN = "fpga_gan.ops"

# Block RAM 18 kbit aspect ratios (depth, width) of 7-series / UltraScale parts.
_BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
# Below this many bits a buffer goes to LUTRAM (distributed RAM) instead of block RAM.
_LUTRAM_MAX_BITS = 1024


def rtl_dir() -> Path:
    """``hw/rtl`` of this checkout (the RTL of our ops lives next to the package, not inside it)."""
    path = Path(__file__).resolve().parents[2] / "hw" / "rtl"
    if not path.is_dir():
        raise FileNotFoundError(f"fpga_gan RTL sources not found at {path} (hw/rtl of the source tree)")
    return path


def ceil_log2(n: int) -> int:
    """Address / counter width for ``n`` states, at least 1 (matches the RTL's localparams)."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def buffer_bram18(depth: int, width: int) -> int:
    """BRAM18 count of a ``depth`` x ``width`` simple-dual-port buffer (0 when it fits LUTRAM)."""
    if depth * width <= _LUTRAM_MAX_BITS:
        return 0
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in _BRAM18_SHAPES)


def buffer_lutram_luts(depth: int, width: int) -> int:
    """LUTs of a small buffer mapped to distributed RAM (one LUT per bit per 64 entries)."""
    if depth * width > _LUTRAM_MAX_BITS:
        return 0
    return math.ceil(depth / 64) * width


def counter_luts(*limits: int) -> int:
    """Rough LUT cost of wrap-around counters: about 2 LUTs per counter bit (increment + compare)."""
    return sum(2 * ceil_log2(n) for n in limits)


def image_problems(op, fold_attr: str | None = "SIMD") -> list[str]:
    """Attribute errors of the common geometry: ``ImgDim`` [H, W], ``NumChannels`` and (unless
    None) the channel folding attribute ``fold_attr``, which must divide the channels."""
    out = []
    dims = list(op.get_nodeattr("ImgDim"))
    if len(dims) != 2 or min(dims, default=0) < 1:
        out.append(f"ImgDim must be [H, W] with H, W >= 1 (got {dims})")
    ch = op.get_nodeattr("NumChannels")
    if ch < 1:
        out.append("NumChannels must be >= 1")
    if fold_attr is not None:
        fold = op.get_nodeattr(fold_attr)
        if fold < 1 or (ch >= 1 and ch % fold):
            out.append(f"{fold_attr} ({fold}) must be >= 1 and divide NumChannels ({ch})")
    return out


class GanHWOp(HWCustomOp):
    """Base of the fpga_gan ops: one FINN datatype (``inputDataType``) shared by all ports.

    Subclasses define ``_simd()`` (elements per beat), the shapes and ``_problems()`` (a list of
    human-readable attribute errors, empty when the node is consistent), and the facts that the
    rest of fpga_gan reads off the class (see :mod:`fpga_gan.ops.registry`):

    * ``RTL_CORE``, ``RTL_DEPS``, ``rtl_parameters()``: the core in ``hw/rtl`` and its parameters;
    * ``LINT_CASES``: configurations whose generated wrapper ``make lint`` checks;
    * ``FACTS``: an :class:`~fpga_gan.ops.registry.OpFacts` for the simulator, folding, estimates;
    * ``LAYOUT_PASSES``: qonnx Transformations the compiler's streamline stage runs (with FINN's
      Transpose moves, to a fixed point) so the op's ONNX pattern reaches NHWC form;
    * ``INFER_PASSES``: Transformations the convert_to_hw stage runs (first) to make the op;
    * resource and cycle estimates as FINN's methods (``lut_estimation``, ``get_exp_cycles``...).
    """

    RTL_CORE: str = ""
    RTL_DEPS: tuple[str, ...] = ()
    LINT_CASES: tuple = ()
    LAYOUT_PASSES: tuple = ()
    INFER_PASSES: tuple = ()

    def rtl_parameters(self) -> dict[str, int | str]:  # pragma: no cover - overridden
        """The core's Verilog parameters, in the core's order (values as Verilog literals)."""
        raise NotImplementedError

    @classmethod
    def rtl_sources(cls) -> list[str]:
        """Files of ``hw/rtl`` the op's RTL needs, dependencies first."""
        return [*cls.RTL_DEPS, cls.RTL_CORE]

    def get_nodeattr_types(self):
        attrs = {"inputDataType": ("s", True, "")}
        attrs.update(super().get_nodeattr_types())
        return attrs

    # ---------------------------------------------------------------- checks
    def _problems(self) -> list[str]:  # pragma: no cover - overridden
        return []

    def _check(self) -> None:
        problems = self._problems()
        if problems:
            raise ValueError(f"{self.onnx_node.op_type} node {self.onnx_node.name!r}: " + "; ".join(problems))

    def verify_node(self):
        """FINN-style: a list of messages; attribute problems are listed, never silently accepted."""
        info = []
        backend = self.get_nodeattr("backend")
        if backend == "fpgadataflow":
            info.append("Attribute backend is set correctly")
        else:
            info.append('Attribute backend should be set to "fpgadataflow"')
        problems = self._problems()
        info.extend(f"ERROR: {p}" for p in problems)
        if not problems:
            info.append("All necessary attributes exist and are consistent")
        return info

    # ---------------------------------------------------------------- datatypes
    def _simd(self) -> int:
        return 1

    def get_input_datatype(self, ind=0):
        return DataType[self.get_nodeattr("inputDataType")]

    def get_output_datatype(self, ind=0):
        return self.get_input_datatype()

    def infer_node_datatype(self, model):
        node = self.onnx_node
        dts = [model.get_tensor_datatype(name) for name in node.input]
        if any(dt != dts[0] for dt in dts):
            raise ValueError(
                f"{node.op_type} node {node.name!r}: all inputs must share one datatype "
                f"(got {[dt.name for dt in dts]}); requantize the inputs first")
        self.set_nodeattr("inputDataType", dts[0].name)
        for name in node.output:
            model.set_tensor_datatype(name, dts[0])

    def get_instream_width(self, ind=0):
        return self.get_input_datatype(ind).bitwidth() * self._simd()

    def get_outstream_width(self, ind=0):
        return self.get_output_datatype(ind).bitwidth() * self._simd()

    # ---------------------------------------------------------------- shapes
    def _fold(self, normal_shape) -> tuple[int, ...]:
        shape = [int(x) for x in normal_shape]
        simd = self._simd()
        if shape[-1] % simd:
            raise ValueError(f"{self.onnx_node.op_type}: SIMD/PE {simd} does not divide {shape[-1]} channels")
        return tuple(shape[:-1] + [shape[-1] // simd, simd])

    def get_folded_input_shape(self, ind=0):
        return self._fold(self.get_normal_input_shape(ind))

    def get_folded_output_shape(self, ind=0):
        return self._fold(self.get_normal_output_shape(ind))

    def _check_input(self, context, ind=0) -> np.ndarray:
        x = context[self.onnx_node.input[ind]]
        expected = tuple(self.get_normal_input_shape(ind))
        if tuple(x.shape) != expected:
            raise ValueError(f"{self.onnx_node.op_type} node {self.onnx_node.name!r}: input {ind} has "
                             f"shape {tuple(x.shape)}, expected {expected}")
        return x

    # ---------------------------------------------------------------- resources
    def dsp_estimation(self, fpgapart):
        return 0

    def uram_estimation(self, fpgapart):
        return 0


TEMPLATE = "op_wrapper_template.v"


class GanRTLMixin(RTLBackend):
    """RTL backend of an fpga_gan op: fills ``hw/rtl/op_wrapper_template.v`` for the op's core.

    The op class (the other base) says which core: ``RTL_CORE`` (the core's file in ``hw/rtl``,
    module name = file stem), ``RTL_DEPS`` (further files it instantiates) and
    ``rtl_parameters()`` (the core's parameters, in order). One template serves every op: the
    wrappers differed only in those three facts.
    """

    def template_values(self) -> dict[str, str]:
        params = self.rtl_parameters()
        lines = [f"        .{key}({value})" for key, value in params.items()]
        return {"CORE_MODULE": Path(self.RTL_CORE).stem, "CORE_PARAMETERS": ",\n".join(lines)}

    def _port_values(self) -> dict[str, str]:
        """Wrapper ports in FINN's naming plus the core connections (packed buses for N streams,
        stream 0 in the lowest bits)."""
        node = self.onnx_node
        decls, glue, busif = [], [], []
        conn = {k: [] for k in ("S_TDATA", "S_TVALID", "S_TREADY", "M_TDATA", "M_TVALID", "M_TREADY")}
        for i in range(len(node.input)):
            bits = self.get_instream_width(i)
            d, _ = stream_ports("in", i, padded(bits), bits)
            decls.append(d)
            busif.append(f"in{i}_V")
            conn["S_TDATA"].insert(0, f"in{i}_V_TDATA[{bits - 1}:0]")
            conn["S_TVALID"].insert(0, f"in{i}_V_TVALID")
            conn["S_TREADY"].insert(0, f"in{i}_V_TREADY")
        for i in range(len(node.output)):
            bits = self.get_outstream_width(i)
            d, g = stream_ports("out", i, padded(bits), bits)
            decls.append(d)
            glue.append(g)
            busif.append(f"out{i}_V")
            conn["M_TDATA"].insert(0, f"out{i}_V_TDATA[{bits - 1}:0]")
            conn["M_TVALID"].insert(0, f"out{i}_V_TVALID")
            conn["M_TREADY"].insert(0, f"out{i}_V_TREADY")
        ports = "".join(decls).rstrip("\n")
        cut = ports.rfind(",")
        ports = ports[:cut] + ports[cut + 1:]
        values = {k: (v[0] if len(v) == 1 else "{" + ", ".join(v) + "}") for k, v in conn.items()}
        values.update(STREAM_PORTS=ports, PAD_GLUE="".join(glue), BUSIF=":".join(busif))
        return values

    def generate_hdl(self, model, fpgapart, clk):
        self._check()
        code_gen_dir = self.get_nodeattr("code_gen_dir_ipgen")
        if not code_gen_dir:
            raise ValueError(f"{self.onnx_node.name}: set code_gen_dir_ipgen before generate_hdl")
        out_dir = Path(code_gen_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        top = self.get_verilog_top_module_name()
        values = {"TOP_MODULE_NAME": top, **self._port_values(), **self.template_values()}
        text = (rtl_dir() / TEMPLATE).read_text()
        # Drop the template-only header (everything up to the marker line), then fill the keys.
        marker = "// ---- generated wrapper begins ----"
        text = text.split(marker, 1)[1].lstrip("\n")
        for key, value in values.items():
            text = text.replace(f"${key}$", str(value))
        leftover = re.findall(r"\$[A-Z][A-Z0-9_]*\$", text)
        if leftover:
            raise RuntimeError(f"{TEMPLATE}: unfilled template keys {sorted(set(leftover))}")
        header = (f"// Generated by fpga_gan.ops ({self.onnx_node.op_type}) from hw/rtl/{TEMPLATE}"
                  f" for hw/rtl/{self.RTL_CORE}; do not edit.\n")
        (out_dir / f"{top}.v").write_text(header + text)
        for name in self.rtl_sources():
            shutil.copyfile(rtl_dir() / name, out_dir / name)
        self.set_nodeattr("gen_top_module", top)
        self.set_nodeattr("ipgen_path", str(out_dir))
        self.set_nodeattr("ip_path", str(out_dir))

    def get_rtl_file_list(self, abspath=False):
        files = [*self.rtl_sources(), f"{self.get_nodeattr('gen_top_module')}.v"]
        if abspath:
            base = Path(self.get_nodeattr("code_gen_dir_ipgen"))
            return [str(base / f) for f in files]
        return files

    def code_generation_ipi(self):
        cmd = [f"add_files -norecurse {f}" for f in self.get_rtl_file_list(abspath=True)]
        cmd.append(f"create_bd_cell -type module -reference {self.get_nodeattr('gen_top_module')} "
                   f"{self.onnx_node.name}")
        return cmd

    def execute_node(self, context, graph):
        # "rtlsim" needs FINN's XSI simulator (Vivado); everything else runs the golden model.
        if self.get_nodeattr("exec_mode") == "rtlsim":
            RTLBackend.execute_node(self, context, graph)
        else:
            self.golden(context)


def stream_ports(direction: str, index: int, bits: int, core_bits: int) -> tuple[str, str]:
    """FINN wrapper port declarations of stream ``in<index>_V`` / ``out<index>_V``, and the
    padding glue: bytes-padded width ``bits`` outside, ``core_bits`` used by the core."""
    name = f"{'in' if direction == 'in' else 'out'}{index}_V"
    if direction == "in":
        decl = (f"    output wire {name}_TREADY,\n"
                f"    input  wire {name}_TVALID,\n")
        if bits > core_bits:
            decl += (f"    /* verilator lint_off UNUSEDSIGNAL */ // bits above {core_bits} are byte padding\n"
                     f"    input  wire [{bits - 1}:0] {name}_TDATA,\n"
                     f"    /* verilator lint_on UNUSEDSIGNAL */\n")
        else:
            decl += f"    input  wire [{bits - 1}:0] {name}_TDATA,\n"
        glue = ""
    else:
        decl = (f"    input  wire {name}_TREADY,\n"
                f"    output wire {name}_TVALID,\n"
                f"    output wire [{bits - 1}:0] {name}_TDATA,\n")
        glue = (f"    assign {name}_TDATA[{bits - 1}:{core_bits}] = {bits - core_bits}'d0;\n"
                if bits > core_bits else "")
    return decl, glue


def padded(bits: int) -> int:
    return int(roundup_to_integer_multiple(bits, 8))
