"""`make deploy`: one tarball a board needs -- runtime, artifact, sample inputs, a README.

A PYNQ image brings Python, numpy and pynq; it does not bring torch, FINN or this repository.
So the package carries ``fpga_gan/runtime`` alone (numpy at import; pynq and onnxruntime inside
their backends) with the standard-library ``fpga_gan/_files.py`` it uses, the artifact directory,
sample inputs with the codes the CPU reference gives for them, and a README with the three
commands to run. It is written as ``.partial`` and renamed.

The artifact is checked before anything is packed: no symlinks anywhere in it (a link would
smuggle a file from elsewhere into the tarball, or point the board at one), the names in
``model.json`` stay inside it, and with a ``manifest.json`` every listed sha256 matches. The
tarball holds regular files and directories only.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import UserError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]

README = """# {name}: fpga_gan board package

{what}

Contents: `fpga_gan/runtime/` (numpy only at import; `pynq` for the board backend and `onnxruntime`
for the cpu backend are imported when used), `artifact/` ({files}), `samples/inputs.npy`
({n} input code frames, {input_shape}) and `samples/expected.npy` (the cpu backend's output codes
for them).

On the board (PYNQ image, Python >= 3.10, numpy 1.26 or 2.x):

    tar xzf {name}.tar.gz && cd {name}
{selftest}
From Python:

    import numpy as np
    from fpga_gan.runtime import Accelerator
    with Accelerator.open("artifact", backend="{backend}") as acc:
        codes = acc.run(np.load("samples/inputs.npy"))
    assert (codes == np.load("samples/expected.npy")).all()

The cpu backend needs `pip install onnxruntime` where the image lacks it.
"""


class DeployError(UserError):
    """The package cannot be made; the message says what is missing and how to get it."""


def _artifact_dir(model: str, board: str, artifact: Path | None, cpu_only: bool, log) -> tuple[Path, bool]:
    """The artifact to package and whether it has a bitstream."""
    from ..artifacts import zoo_artifact
    from ..runtime.accelerator import ArtifactError
    from ..runtime.manifest import Manifest

    default = Path("bitstreams") / f"{model}-{board}"
    path = Path(artifact) if artifact else default
    if (path / "manifest.json").is_file() or (path / "manifest.json").is_symlink():
        try:
            manifest = Manifest.load(path).data
        except ArtifactError as err:
            raise DeployError(f"refusing to package {path}: {err}") from None
        if manifest.get("board") != board:
            raise DeployError(f"{path} is built for {manifest.get('board')}, not {board}")
        return path, manifest.get("bitstream") is not None
    if not cpu_only:
        raise DeployError(f"no bitstream for {model} on {board}: {path / 'manifest.json'} does not exist. Build one "
                          f"with `make bitstream MODEL={model} BOARD={board}` on a machine with Vivado, or pass "
                          "--cpu-only to package the CPU fallback (ONNX Runtime) for the board")
    if artifact is not None:
        if not (path / "model.json").is_file():
            raise DeployError(f"{path} is not an artifact directory (no model.json)")
        return path, False
    log(f"no bitstream in {default}: packaging the CPU fallback of {model} (--cpu-only)")
    return zoo_artifact(model), False


def check_artifact(path: Path) -> None:
    """Refuse an artifact that is not safe to ship: symlinks, names escaping it, hash mismatches."""
    from .._files import UnsafePathError, inside
    from ..runtime.accelerator import Artifact, ArtifactError

    path = Path(path)
    for entry in sorted(path.rglob("*")):
        if entry.is_symlink():
            raise DeployError(f"{entry} is a symlink (to {os.readlink(entry)}); an artifact to deploy holds "
                              "regular files only: replace the link by the file it should be, then rebuild "
                              "the manifest (or re-export)")
        if not (entry.is_file() or entry.is_dir()):
            raise DeployError(f"{entry} is neither a regular file nor a directory; remove it from the artifact")
    try:
        artifact = Artifact.load(path)
        for key, name in artifact.meta.get("files", {}).items():
            inside(path, name, f"{path / 'model.json'}: files.{key}")
        artifact.verify_manifest()
    except (ArtifactError, UnsafePathError) as err:
        raise DeployError(f"refusing to package {path}: {err}") from None


def _copy_regular_tree(source: Path, dest: Path) -> None:
    """Copy a checked artifact: regular files and directories only, never following a link."""
    def refuse_links(directory: str, names: list[str]) -> list[str]:
        links = [n for n in names if os.path.islink(os.path.join(directory, n))]
        if links:
            raise DeployError(f"{os.path.join(directory, links[0])} became a symlink while packaging")
        return [n for n in names if n.endswith(".partial")]

    shutil.copytree(source, dest, symlinks=True, ignore=refuse_links)


def _cpu_only_manifest(model: str, board_name: str, source: Path) -> dict:
    """A manifest without .bit/.hwh, so the board runtime knows what the package is and is not."""
    from .. import __version__
    from .._files import sha256_file
    from ..compiler.boards import get_board
    from ..runtime.manifest import PACKING_ORDER
    from ..toolchain import finn_plus_version

    board = get_board(board_name)
    meta = json.loads((source / "model.json").read_text())

    def tensor(spec: dict) -> dict:
        return {k: spec[k] for k in ("name", "shape", "layout", "dtype", "bits", "signed")}

    def stream(spec: dict) -> dict:
        c, h, w = spec["shape"][1:] if len(spec["shape"]) == 4 else (spec["shape"][1], 1, 1)
        return {"bits": spec["bits"], "signed": spec["signed"], "elems_per_beat": c,
                "beat_bytes": (spec["bits"] * c + 7) // 8, "beats_per_frame": h * w, "shape_nhwc": [h, w, c]}

    qonnx = source / meta["files"]["qonnx"]
    return {"schema_version": 1, "name": f"{model}-{board.name}", "model": model,
            "model_sha256": sha256_file(qonnx), "board": board.name, "pynq_board": board.pynq_board_names[0],
            "part": board.part, "clock_mhz": board.default_clock_mhz, "finn_plus_version": finn_plus_version(),
            "fpga_gan_version": __version__, "vivado_version": None, "bitstream": None, "hwh": None,
            "dma": {"input": "idma0", "output": "odma0"}, "input": tensor(meta["inputs"][0]),
            "output": tensor(meta["outputs"][0]),
            "packing": {"order": PACKING_ORDER, "input": stream(meta["inputs"][0]),
                        "output": stream(meta["outputs"][0])},
            "files": {}}


def sample_inputs(acc, n: int, seed: int = 0) -> np.ndarray:
    """``n`` input frames in the input's code range (seeded), as the board's self-test feeds them."""
    spec = acc.input_spec
    lo, hi = spec.value_range
    shape = tuple(d for d in spec.shape[1:])
    return np.random.default_rng(seed).integers(lo, hi + 1, size=(n, *shape)).astype(spec.dtype)


def make_deploy(model: str, board: str, *, artifact: Path | None = None, cpu_only: bool = False, samples: int = 8,
                out_dir: Path = Path("dist"), log: Callable[[str], None] = print) -> Path:
    """Write ``out_dir/<model>-<board>.tar.gz``; returns its path."""
    from ..compiler.boards import get_board
    from ..compiler.errors import CompileError
    from ..runtime import Accelerator
    from ..runtime.manifest import write_manifest

    try:
        board = get_board(board).name
    except CompileError as err:
        raise DeployError(str(err)) from err
    if samples < 1:
        raise DeployError("--samples must be at least 1")
    source, has_bitstream = _artifact_dir(model, board, artifact, cpu_only, log)
    check_artifact(source)
    name = f"{model}-{board}"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fpga_gan_deploy_") as tmp:
        root = Path(tmp) / name
        shutil.copytree(PACKAGE_ROOT / "runtime", root / "fpga_gan" / "runtime",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copyfile(PACKAGE_ROOT / "__init__.py", root / "fpga_gan" / "__init__.py")
        shutil.copyfile(PACKAGE_ROOT / "errors.py", root / "fpga_gan" / "errors.py")   # the runtime's error root
        shutil.copyfile(PACKAGE_ROOT / "_files.py", root / "fpga_gan" / "_files.py")
        _copy_regular_tree(source, root / "artifact")
        if not (root / "artifact" / "manifest.json").is_file():
            write_manifest(root / "artifact", _cpu_only_manifest(model, board, source))
        with Accelerator.open(root / "artifact", backend="cpu") as acc:
            inputs = sample_inputs(acc, samples)
            expected = acc.run(inputs)
            input_shape = f"shape (N, {', '.join(map(str, acc.input_spec.shape[1:]))}), {acc.input_spec.dtype}"
        (root / "samples").mkdir()
        np.save(root / "samples" / "inputs.npy", inputs)
        np.save(root / "samples" / "expected.npy", expected)
        (root / "requirements.txt").write_text("numpy>=1.24\n# pynq comes with the PYNQ image; the cpu backend "
                                               "needs onnxruntime\n")
        files = ", ".join(sorted(p.name for p in (root / "artifact").iterdir()))
        what = (f"The accelerator bitstream of `{model}` for {board}, its runtime and a self-test."
                if has_bitstream else
                f"**CPU-only package**: no bitstream was built for `{model}` on {board} (that needs Vivado; see "
                "`make bitstream`). It runs the same integer model on the board's CPU through ONNX Runtime.")
        (root / "README.md").write_text(README.format(name=name, what=what, files=files, n=samples,
                                                      input_shape=input_shape, selftest=(
            "    python3 -m fpga_gan.runtime.selftest artifact   # hardware vs cpu: identical codes, images/s, latency\n"
            if has_bitstream else ""),
                                                      backend="pynq" if has_bitstream else "cpu"))
        target = out_dir / f"{name}.tar.gz"
        partial = out_dir / f"{name}.tar.gz.partial"
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(root, arcname=name, filter=_reproducible)
        partial.replace(target)
    log(f"{target}: {target.stat().st_size / 1024:.0f} KiB ({'bitstream' if has_bitstream else 'CPU-only'})")
    return target


def _reproducible(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owner-neutral entries, so the package does not carry this machine's user names; only
    regular files and directories go in (the tree was copied without links; this is the seal)."""
    if not (info.isfile() or info.isdir()):
        raise DeployError(f"refusing to put {info.name} in the package: not a regular file or directory")
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


__all__ = ["DeployError", "check_artifact", "make_deploy", "sample_inputs"]
