"""Finding Vivado, and saying exactly what is missing when it is not there.

FINN's Vivado steps read ``XILINX_VIVADO`` (and derive the version from that path, as
``finn.util.basic.get_vivado_version`` does); finn-plus 1.6.1 supports Vivado 2022.2 and 2024.2.
Checking here, before handing over, turns an hour-later crash deep in FINN into a message that
names the variable, the versions and the next command.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..compiler.errors import CompileError

SUPPORTED_VIVADO = ("2022.2", "2024.2")


class VivadoMissing(CompileError):
    """No usable Vivado: the Vivado-free outputs are written, the bitstream cannot be."""


@dataclass(frozen=True)
class Vivado:
    root: Path
    version: str

    @property
    def executable(self) -> Path:
        return self.root / "bin" / "vivado"


def _version_of(root: Path) -> str | None:
    match = re.search(r"\b(20\d{2}\.[1-4])\b", str(root))
    return match.group(1) if match else None


def find_vivado(environ: dict[str, str] | None = None) -> Vivado:
    """The Vivado that FINN will use, or :class:`VivadoMissing` saying what to do."""
    env = os.environ if environ is None else environ
    versions = " or ".join(SUPPORTED_VIVADO)
    root = env.get("XILINX_VIVADO")
    if not root:
        raise VivadoMissing(
            f"Vivado not found: XILINX_VIVADO is not set. The bitstream needs Vivado {versions} (the versions "
            "finn-plus supports); source its settings64.sh (e.g. `source /tools/Xilinx/Vivado/2024.2/settings64.sh`) "
            "and run the command again.")
    vivado = Path(root)
    if not (vivado / "bin" / "vivado").is_file():
        raise VivadoMissing(f"XILINX_VIVADO={root} has no bin/vivado: point it at a Vivado {versions} installation "
                            "(source that installation's settings64.sh)")
    version = _version_of(vivado)
    if version not in SUPPORTED_VIVADO:
        found = f"Vivado {version}" if version else f"a Vivado whose version is not in its path ({root})"
        raise VivadoMissing(f"XILINX_VIVADO points to {found}; finn-plus supports Vivado {versions} only "
                            "(FINN reads the version from that path)")
    return Vivado(vivado, version)
