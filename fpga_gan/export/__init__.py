"""QONNX / QCDQ export of the generators and the bit-exactness cross-check."""

from .exporter import ExportResult, export_generator, torch_output_codes
from .crosscheck import CrossCheckReport, cross_check

__all__ = ["ExportResult", "export_generator", "torch_output_codes", "CrossCheckReport", "cross_check"]
