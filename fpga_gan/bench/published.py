"""Published figures of comparable accelerators: quoted, never measured here.

Why they are in the bench at all: a frame rate means little without a reference point, and the
nearest ones are other people's boards and designs. They live apart from the measured figures,
each with its source, so no reader (and no test) can take one for the other. Each entry quotes
the source's own claim; details the source does not state are left out rather than guessed.
"""

from __future__ import annotations

__all__ = ["PUBLISHED"]

_SPAGNOLO = ("Spagnolo et al., \"Efficient Deconvolution Architecture for Heterogeneous Systems-on-Chip\", "
             "Journal of Imaging 6(9):85, 2020, doi:10.3390/jimaging6090085")
_DPU = ("\"FPGA-Accelerated Real-Time DCGANs via Xilinx DPUs and Vitis AI\", Research Square preprint, "
        "doi:10.21203/rs.3.rs-7263274/v1 (Vitis AI DPU)")
_FINN = ("Umuroglu et al., \"FINN: A Framework for Fast, Scalable Binarized Neural Network Inference\", "
         "FPGA 2017 (ACM/SIGDA International Symposium on Field-Programmable Gate Arrays)")


def _entry(system: str, device: str, value: float, unit: str, conditions: str, source: str) -> dict:
    return {"system": system, "device": device, "value": value, "unit": unit, "conditions": conditions,
            "source": source, "provenance": f"published: {source}"}


PUBLISHED: tuple[dict, ...] = (
    _entry("DCGAN deconvolution accelerator, whole embedded system", "Xilinx Zynq XC7Z020 (the pynq-z2's part)",
           54, "GOPS", "150 MHz, under 1.8 W", _SPAGNOLO),
    _entry("DCGAN deconvolution accelerator, standalone", "Xilinx Zynq XC7Z020 (the pynq-z2's part)",
           72, "GOPS", "200 MHz, under 0.5 W, about 96% of the DSPs", _SPAGNOLO),
    _entry("DCGAN on the Vitis AI DPU", "ZCU104 (Zynq UltraScale+ MPSoC)", 105, "FPS (over)",
           "INT8, quantized and pruned", _DPU),
    _entry("FINN CNV (binarized CIFAR-10 CNN)", "ZC706 (Zynq XC7Z045)", 21906, "images/s",
           "binarized weights and activations", _FINN),
)
