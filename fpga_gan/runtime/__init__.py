"""Run a compiled or exported generator on any target through one API.

``Accelerator.open(artifact_dir, backend="auto"|"cpu"|...)`` then ``run(codes)``. This package
imports numpy alone: onnxruntime (cpu backend) and pynq (board backend) are imported inside the
backends that need them, and torch or FINN never, so it runs on a PYNQ board image.
"""

from .accelerator import Accelerator, ArtifactError, InputError, available_backends, register_backend

__all__ = ["Accelerator", "ArtifactError", "InputError", "available_backends", "register_backend"]
