"""The ``fpga-gan`` command line: data, training, export and the try-on / design jobs."""

from __future__ import annotations

import contextlib
import math
import sys
import time
import traceback
from pathlib import Path
from typing import NoReturn

import click
from PIL import Image

from . import __version__
from .errors import INTERNAL_ERROR_EXIT, REPORT_URL, USER_ERROR_EXIT, InternalError, UserError


MAX_IMAGE_SIDE = 4096   # a generator's image side; beyond it the memory, not the model, is the limit


def _parse_size(value: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"size must look like HxW (e.g. 64x48), got {value!r}") from None
    if h <= 0 or w <= 0:
        raise click.BadParameter(f"size must be positive, got {value!r}")
    if max(h, w) > MAX_IMAGE_SIDE:
        raise click.BadParameter(f"size {value!r} is too large (at most {MAX_IMAGE_SIDE} per side)")
    return h, w


def _parse_widths(value: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in value.split(","))
    except ValueError:
        raise click.BadParameter(f"--widths must be comma-separated channel counts (e.g. 16,32,64,64), "
                                 f"got {value!r}") from None
    if not widths or any(w < 1 or w > 4096 for w in widths):
        raise click.BadParameter(f"--widths entries must be between 1 and 4096, got {value!r}")
    return widths


class _FinitePositive(click.ParamType):
    """A float that is > 0 and finite (click's FloatRange lets nan and inf through)."""

    name = "number"

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not (math.isfinite(number) and number > 0):
            self.fail(f"{value!r} is not a finite positive number", param, ctx)
        return number


POSITIVE = _FinitePositive()


def _image_output(ctx, param, value: Path | None) -> Path | None:
    """An output image path: not a directory, with an extension PIL writes."""
    if value is None:
        return value
    if value.is_dir():
        raise click.BadParameter(f"{value} is a directory; give a file name such as {value / 'out.png'}")
    Image.init()
    if value.suffix.lower() not in Image.registered_extensions():
        raise click.BadParameter(f"{value}: unknown image extension {value.suffix!r} (use .png or .jpg)")
    return value


def _fail(message: str) -> NoReturn:
    """Stop the command on a problem the user can fix (the one handler below prints it)."""
    raise UserError(message)


@contextlib.contextmanager
def _user_errors(*types: type[BaseException]):
    """Declare that these built-in exceptions, raised by the library call inside, describe bad
    arguments (the library documents them so): they become a :class:`UserError`."""
    try:
        yield
    except types as exc:
        raise UserError(str(exc)) from exc


class _Cli(click.Group):
    """The one error handler of every command: a :class:`UserError` is one line and exit 2, an
    :class:`InternalError` (our bug) its traceback and a request to report it, exit 3."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise                       # click's own usage errors and exits
        except UserError as err:
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(USER_ERROR_EXIT)
        except Exception as err:        # InternalError, or any exception nobody raised on purpose: a bug
            traceback.print_exception(err, file=sys.stderr)
            kind = "internal error" if isinstance(err, InternalError) else f"internal error ({type(err).__name__})"
            click.secho(f"{kind}: {err}\nThis is a bug of fpga_gan {__version__}, not of your input: please report it "
                        f"to {REPORT_URL} with the traceback above and the command you ran.", fg="red", err=True)
            sys.exit(INTERNAL_ERROR_EXIT)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fpga-gan")
def main() -> None:
    """FPGA-accelerated GAN inference for fashion imagery: virtual try-on and garment design."""


# ---------------------------------------------------------------------------------------- data
@main.group()
def data() -> None:
    """The synthetic try-on world (VITON-HD folder layout)."""


@data.command("make")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--n", "n", default=1000, show_default=True, help="Number of samples.")
@click.option("--seed", default=0, show_default=True, help="Data set seed.")
@click.option("--size", default="64x48", show_default=True, help="Image size HxW.")
@click.option("--test-fraction", default=0.1, show_default=True, help="Share of samples in test/.")
@click.option("--workers", default=None, type=int, help="Worker processes (default: all cores).")
@click.option("--overwrite", is_flag=True, help="Replace an existing data set.")
def data_make(out_dir: Path, n: int, seed: int, size: str, test_fraction: float, workers: int | None,
              overwrite: bool) -> None:
    """Render N paired samples into OUT (written atomically: all or nothing)."""
    from .data import make_dataset

    t0 = time.time()
    with _user_errors(FileExistsError, ValueError):      # make_dataset's documented argument errors
        path = make_dataset(out_dir, n, seed=seed, size=_parse_size(size), test_fraction=test_fraction,
                            workers=workers, overwrite=overwrite)
    click.echo(f"wrote {n} samples to {path} in {time.time() - t0:.1f} s")


@data.command("make-edits")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--n", "n", default=20000, show_default=True, help="Number of (source, edit, target) triples.")
@click.option("--seed", default=0, show_default=True, help="Data set seed.")
@click.option("--size", default="64x64", show_default=True, help="Garment image size HxW.")
@click.option("--test-fraction", default=0.1, show_default=True, help="Share of triples in test/ (unseen garments).")
@click.option("--overwrite", is_flag=True, help="Replace an existing edit data set.")
def data_make_edits(out_dir: Path, n: int, seed: int, size: str, test_fraction: float, overwrite: bool) -> None:
    """Render N garment edits (colour, texture, shape) with their exact targets into OUT (atomically)."""
    from .data.edits import make_edit_dataset

    t0 = time.time()
    with _user_errors(FileExistsError, ValueError):      # make_edit_dataset's documented argument errors
        path = make_edit_dataset(out_dir, n, seed=seed, size=_parse_size(size), test_fraction=test_fraction,
                                 overwrite=overwrite)
    click.echo(f"wrote {n} edits to {path} in {time.time() - t0:.1f} s")


# ---------------------------------------------------------------------------------------- train
@main.group()
def train() -> None:
    """Quantization-aware training (checkpoints in OUT; --resume continues)."""


def _unet_train_command(name: str, default_size: str, data_help: str, what: str):
    """``train tryon`` and ``train editor``: one U-Net QAT loop, two kinds of data set."""

    @train.command(name, help=f"Train the {what} (L1 + PatchGAN); writes metrics.json, loss.png, generator.pt.")
    @click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help=data_help)
    @click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run directory.")
    @click.option("--steps", default=6000, show_default=True, type=click.IntRange(min=1))
    @click.option("--batch", default=16, show_default=True, type=click.IntRange(min=1))
    @click.option("--lr", default=3e-4, show_default=True, type=POSITIVE)
    @click.option("--widths", default="16,32,64,64", show_default=True, help="Channels per U-Net level.")
    @click.option("--size", default=default_size, show_default=True, help="Image size HxW.")
    @click.option("--weight-bits", default=4, show_default=True)
    @click.option("--act-bits", default=4, show_default=True)
    @click.option("--learned-act-scale", is_flag=True,
                  help="Learn a power-of-two scale per ReLU (tied across skip concats).")
    @click.option("--init-from", type=click.Path(path_type=Path), default=None,
                  help="Start from these generator weights (e.g. the trained float twin).")
    @click.option("--float", "float_twin", is_flag=True, help="Train the float twin instead.")
    @click.option("--lr-decay-from", type=int, default=None,
                  help="Step from which the learning rates fall linearly to 0 at --steps (default: constant).")
    @click.option("--adv-weight", default=1.0, show_default=True, help="Weight of the PatchGAN loss (L1 has 100).")
    @click.option("--ssim-weight", default=0.0, show_default=True, help="Weight of the (1 - SSIM) loss.")
    @click.option("--seed", default=0, show_default=True)
    @click.option("--threads", default=None, type=int, help="Torch CPU threads.")
    @click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
    def command(data_dir: Path, out_dir: Path, steps: int, batch: int, lr: float, widths: str,
                size: str, weight_bits: int, act_bits: int, learned_act_scale: bool,
                init_from: Path | None, float_twin: bool, lr_decay_from: int | None, adv_weight: float,
                ssim_weight: float, seed: int, threads: int | None, resume: bool) -> None:
        from .train import TryOnTrainConfig, train_tryon
        from .train.tryon import is_edit_dataset

        if (name == "editor") != is_edit_dataset(data_dir) and data_dir.is_dir():
            _fail(f"{data_dir} is {'an edit' if is_edit_dataset(data_dir) else 'not an edit'} data set: "
                  f"{'fpga-gan train editor' if name == 'tryon' else 'fpga-gan data make-edits'} is what it needs")
        cfg = TryOnTrainConfig(data=str(data_dir), out=str(out_dir), steps=steps, batch=batch, lr=lr,
                               widths=_parse_widths(widths), size=_parse_size(size),
                               quantized=not float_twin, weight_bits=weight_bits, act_bits=act_bits,
                               learned_act_scale=learned_act_scale,
                               init_from=str(init_from) if init_from else None, lr_decay_from=lr_decay_from,
                               adv_weight=adv_weight, ssim_weight=ssim_weight, seed=seed, threads=threads)
        with _user_errors(FileNotFoundError, ValueError):    # --resume / --init-from / data problems
            result = train_tryon(cfg, resume=resume)
        if "held_out" in result:              # (under torchrun: rank 0 alone evaluates and writes)
            m = result["held_out"]
            click.echo(f"held-out PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} -> {out_dir / 'generator.pt'}")

    return command


train_tryon_cmd = _unet_train_command("tryon", "64x48", "Data set root (VITON-HD layout).", "try-on generator")
train_editor_cmd = _unet_train_command("editor", "64x64", "Edit data set (fpga-gan data make-edits).",
                                       "garment editor")


@train.command("dcgan")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--steps", default=3000, show_default=True, type=click.IntRange(min=1))
@click.option("--batch", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=2e-4, show_default=True, type=POSITIVE)
@click.option("--ngf", default=16, show_default=True, type=click.IntRange(1, 4096),
              help="Generator width (64 = classic DCGAN-64).")
@click.option("--nz", default=64, show_default=True, type=click.IntRange(1, 4096), help="Latent size.")
@click.option("--garments", default=4000, show_default=True, type=click.IntRange(min=1),
              help="Rendered training garments.")
@click.option("--data-seed", default=1, show_default=True)
@click.option("--weight-bits", default=4, show_default=True)
@click.option("--act-bits", default=4, show_default=True)
@click.option("--learned-act-scale", is_flag=True, help="Learn a power-of-two scale per ReLU.")
@click.option("--adv-weight", default=0.02, show_default=True, help="Weight of the GAN loss.")
@click.option("--init-from", type=click.Path(path_type=Path), default=None,
              help="Start from these generator weights (e.g. the trained float twin).")
@click.option("--float", "float_twin", is_flag=True, help="Train the float twin instead.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=None, type=int, help="Torch CPU threads.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
def train_dcgan_cmd(out_dir: Path, steps: int, batch: int, lr: float, ngf: int, nz: int, garments: int,
                    data_seed: int, weight_bits: int, act_bits: int, learned_act_scale: bool,
                    adv_weight: float, init_from: Path | None, float_twin: bool, seed: int, threads: int | None,
                    resume: bool) -> None:
    """Train the garment design generator (DCGAN) on rendered in-shop garments."""
    from .train import DCGANTrainConfig, train_dcgan

    cfg = DCGANTrainConfig(out=str(out_dir), garments=garments, data_seed=data_seed, steps=steps,
                           batch=batch, lr=lr, nz=nz, ngf=ngf, quantized=not float_twin,
                           weight_bits=weight_bits, act_bits=act_bits,
                           learned_act_scale=learned_act_scale, adv_weight=adv_weight,
                           init_from=str(init_from) if init_from else None, seed=seed, threads=threads)
    with _user_errors(FileNotFoundError, ValueError):    # --resume / --init-from / data problems
        result = train_dcgan(cfg, resume=resume)
    click.echo(f"final losses {result['final_losses']} -> {out_dir / 'generator.pt'}")


@train.command("designer")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--steps", default=6000, show_default=True, type=click.IntRange(min=1))
@click.option("--batch", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=3e-4, show_default=True, type=POSITIVE, help="Peak learning rate (cosine decay).")
@click.option("--ngf", default=32, show_default=True, type=click.IntRange(1, 4096), help="Generator width.")
@click.option("--garments", default=12000, show_default=True, type=click.IntRange(min=1),
              help="Rendered training garments (half drawn from the prior, half edited).")
@click.option("--data-seed", default=11, show_default=True)
@click.option("--ssim-weight", default=1.0, show_default=True,
              help="Weight of the (1 - SSIM) loss (squared error has 1).")
@click.option("--chroma-weight", default=30.0, show_default=True,
              help="Weight of the squared error on colour differences (keeps the colours; see train/designer.py).")
@click.option("--weight-bits", default=4, show_default=True)
@click.option("--act-bits", default=4, show_default=True)
@click.option("--learned-act-scale", is_flag=True, help="Learn a power-of-two scale per ReLU.")
@click.option("--init-from", type=click.Path(path_type=Path), default=None,
              help="Start from these generator weights (e.g. the trained float twin).")
@click.option("--float", "float_twin", is_flag=True, help="Train the float twin instead.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=None, type=int, help="Torch CPU threads.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
def train_designer_cmd(out_dir: Path, steps: int, batch: int, lr: float, ngf: int, garments: int, data_seed: int,
                       ssim_weight: float, chroma_weight: float, weight_bits: int, act_bits: int, learned_act_scale: bool,
                       init_from: Path | None, float_twin: bool, seed: int, threads: int | None,
                       resume: bool) -> None:
    """Train the garment design generator on the world's design space (design code -> garment)."""
    from .train.designer import DesignerTrainConfig, train_designer

    cfg = DesignerTrainConfig(out=str(out_dir), garments=garments, data_seed=data_seed, steps=steps, batch=batch,
                              lr=lr, ngf=ngf, ssim_weight=ssim_weight, chroma_weight=chroma_weight,
                              quantized=not float_twin,
                              weight_bits=weight_bits, act_bits=act_bits, learned_act_scale=learned_act_scale,
                              init_from=str(init_from) if init_from else None, seed=seed, threads=threads)
    with _user_errors(FileNotFoundError, ValueError):    # --resume / --init-from problems
        result = train_designer(cfg, resume=resume)
    m = result["held_out"]
    click.echo(f"held-out PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} -> {out_dir / 'generator.pt'}")


@train.command("attributes")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--steps", default=4000, show_default=True, type=click.IntRange(min=1))
@click.option("--batch", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=1e-3, show_default=True, type=POSITIVE, help="Peak learning rate (cosine decay).")
@click.option("--width", default=24, show_default=True, type=click.IntRange(1, 1024), help="Channels of stage 1.")
@click.option("--garments", default=16000, show_default=True, type=click.IntRange(min=1),
              help="Rendered training garments (half drawn from the prior, half edited).")
@click.option("--data-seed", default=7, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=None, type=int, help="Torch CPU threads.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
def train_attributes_cmd(out_dir: Path, steps: int, batch: int, lr: float, width: int, garments: int,
                         data_seed: int, seed: int, threads: int | None, resume: bool) -> None:
    """Train the garment attribute classifier (the judge of edits and designs; float, not deployed)."""
    from .train.attributes import CLASSIFIER_FILE, AttributeTrainConfig, train_attributes

    cfg = AttributeTrainConfig(out=str(out_dir), garments=garments, data_seed=data_seed, steps=steps, batch=batch,
                               lr=lr, width=width, seed=seed, threads=threads)
    with _user_errors(FileNotFoundError, ValueError):    # --resume problems
        result = train_attributes(cfg, resume=resume)
    agreement = result["held_out"]["agreement"]
    click.echo("held-out agreement: " + ", ".join(f"{k} {v:.3f}" for k, v in agreement.items()) +
               f" -> {out_dir / CLASSIFIER_FILE}")


# ---------------------------------------------------------------------------------------- export
def _weights_for(model: str) -> tuple[Path, str]:
    """A zoo name or a checkpoint path -> (weights file, model name)."""
    from .models.zoo import ZOO, zoo_path

    if model in ZOO:
        return zoo_path(model), model
    path = Path(model)
    if path.suffix == ".pt":
        if not path.is_file():
            _fail(f"weights file not found: {path}")
        return path, path.stem
    _fail(f"unknown model {model!r}: give a zoo name ({', '.join(ZOO)}) or a .pt checkpoint")


@main.command()
@click.argument("model")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--check", "check_inputs", default=64, show_default=True,
              help="Random inputs for the PyTorch / qonnx / ONNX Runtime bit-exactness check (0: skip).")
@click.option("--seed", default=0, show_default=True, help="Seed of the check inputs.")
def export(model: str, out_dir: Path, check_inputs: int, seed: int) -> None:
    """Export MODEL (zoo name or .pt) to QONNX, QCDQ ONNX and model.json in OUT."""
    from .artifacts import export_weights

    weights, name = _weights_for(model)
    t0 = time.time()
    with _user_errors(ValueError):      # export_weights documents ValueError for a generator it cannot export
        result, report = export_weights(weights, out_dir, name, check_inputs=check_inputs, seed=seed)
    click.echo(f"exported {name} to {out_dir} in {time.time() - t0:.1f} s")
    for key in ("qonnx", "qcdq"):
        click.echo(f"  {key}: {out_dir / result.spec['files'][key]}")
    if report is not None:
        status = "BIT-EXACT" if report.bit_exact else "MISMATCH"
        click.echo(f"  check: {status}: {report.summary()}")
        if not report.bit_exact:
            sys.exit(1)


# ---------------------------------------------------------------------------------------- jobs
def _open_accelerator(model: str, artifact: Path | None, backend: str):
    from .artifacts import zoo_artifact
    from .runtime import Accelerator

    path = artifact if artifact is not None else zoo_artifact(model)
    with _user_errors(ValueError):                        # an unknown backend name
        return Accelerator.open(path, backend=backend)


_backend_option = click.option("--backend", default="cpu", show_default=True,
                               help="Where to run: cpu (ONNX Runtime), sim, pynq or auto.")
_artifact_option = click.option("--artifact", type=click.Path(path_type=Path), default=None,
                                help="An exported artifact directory (default: the zoo model).")


@main.command()
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help="Data set root.")
@click.option("--split", default="test", show_default=True)
@click.option("--person", default=None, help="Person image name (e.g. 000123_00.png).")
@click.option("--cloth", default=None, help="In-shop garment image name.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, callback=_image_output,
              help="Output PNG (one pair).")
@click.option("--pairs", "pairs_file", type=click.Path(path_type=Path), default=None,
              help="A pairs file (person cloth per line) to dress many.")
@click.option("--out-dir", type=click.Path(path_type=Path), default=None, help="Output folder for --pairs.")
@_backend_option
@_artifact_option
def tryon(data_dir: Path, split: str, person: str | None, cloth: str | None, output: Path | None,
          pairs_file: Path | None, out_dir: Path | None, backend: str, artifact: Path | None) -> None:
    """Dress a person in a garment (one pair, or every pair of a pairs file)."""
    from .app import run_tryon
    from .data.viton import read_pairs

    if pairs_file is not None:
        if out_dir is None:
            _fail("--pairs needs --out-dir")
        pairs = read_pairs(pairs_file)
    elif person and cloth and output:
        pairs = [(person, cloth)]
    else:
        _fail("give --person, --cloth and -o OUT.png, or --pairs FILE and --out-dir DIR")
    acc = _open_accelerator("tryon", artifact, backend)
    t0 = time.time()
    results = run_tryon(acc, data_dir, pairs, split=split)
    if pairs_file is None:
        output.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(results[0].result).save(output)
        click.echo(f"wrote {output} ({acc.backend_name} backend, {time.time() - t0:.2f} s)")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for r in results:
        Image.fromarray(r.result).save(out_dir / f"{Path(r.person_name).stem}__{Path(r.cloth_name).stem}.png")
    click.echo(f"wrote {len(results)} try-ons to {out_dir} ({acc.backend_name} backend, "
               f"{time.time() - t0:.2f} s)")


@main.group()
def design() -> None:
    """The design studio: edit a garment's colour, texture and shape; sample new garments."""


_set_option = click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                           help="An attribute to set: colour=#aa3300, colour2=..., pattern=checks, period=0.4, "
                                "kind=dress, sleeve=short, neckline=v, length=1.2, fit=1.1 (repeatable).")


def _parse_settings(settings: tuple[str, ...]) -> dict:
    from .data.edits import parse_edit

    return parse_edit(list(settings))     # an EditError is a UserError: one clear line


@design.command("sample")
@click.option("-n", "count", default=16, show_default=True, type=click.IntRange(1, 4096),
              help="Number of garments.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("designs.png"), show_default=True,
              callback=_image_output)
@click.option("--seed", default=0, show_default=True, help="Seed of the designs drawn from the design space.")
@_set_option
@click.option("--columns", default=8, show_default=True, type=click.IntRange(1, 64), help="Grid columns.")
@_backend_option
@_artifact_option
def design_sample(count: int, output: Path, seed: int, settings: tuple[str, ...], columns: int, backend: str,
                  artifact: Path | None) -> None:
    """Draw COUNT new garments from the design generator, with any --set attributes fixed."""
    from .app import image_grid, run_design, run_designer
    from .data.design import DESIGN_CODE_SIZE, sample_designs

    fixed = _parse_settings(settings)
    garments = sample_designs(count, seed, fixed)
    acc = _open_accelerator("designer", artifact, backend)
    t0 = time.time()
    if int(acc.input_spec.shape[1]) == DESIGN_CODE_SIZE:
        images = run_designer(acc, garments)
    elif fixed:
        _fail(f"--set needs the design generator (zoo name 'designer'); {artifact} is a generator with a "
              f"{acc.input_spec.shape[1]}-value latent that knows no attributes")
    else:                                                 # a plain DCGAN (the first design generator): N(0, 1)
        images = run_design(acc, count, seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images, columns=min(columns, count)).save(output)
    click.echo(f"wrote {output} ({count} designs, {acc.backend_name} backend, {time.time() - t0:.2f} s)")


@design.command("edit")
@click.option("--cloth", required=True, type=click.Path(path_type=Path), help="In-shop garment image.")
@_set_option
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), callback=_image_output,
              help="Output image (the edited garment).")
@_backend_option
@_artifact_option
def design_edit(cloth: Path, settings: tuple[str, ...], output: Path, backend: str, artifact: Path | None) -> None:
    """Change a garment's colour, texture or shape with the garment editor."""
    from .app import load_garment_image, run_edits

    edit = _parse_settings(settings)
    if not edit:
        _fail("nothing to edit: give at least one --set KEY=VALUE (e.g. --set colour=#aa3300)")
    if not cloth.is_file():
        _fail(f"garment image not found: {cloth}")
    acc = _open_accelerator("editor", artifact, backend)
    shape = acc.input_spec.shape
    garment = load_garment_image(cloth, (int(shape[2]), int(shape[3])))
    t0 = time.time()
    with _user_errors(ValueError):                        # an artifact that is not the editor
        result = run_edits(acc, garment[None], [edit])[0]
    output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(result).save(output)
    click.echo(f"wrote {output} ({', '.join(f'{k}={v}' for k, v in _edit_text(edit))}; {acc.backend_name} "
               f"backend, {time.time() - t0:.2f} s)")


@design.command("evaluate")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Edit data set (fpga-gan data make-edits); its test split is scored.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Score only the first N test edits.")
@click.option("--samples", default=1000, show_default=True, type=click.IntRange(min=2),
              help="Design samples per generator.")
@click.option("--editor", "editors", multiple=True, type=click.Path(path_type=Path),
              help="Editor weights to score (default: the zoo's W4A4 and float twin).")
@click.option("--designer", "designers", multiple=True, type=click.Path(path_type=Path),
              help="Design generator weights to score (default: the zoo's designer and first DCGAN).")
@click.option("--classifier", type=click.Path(path_type=Path), default=None,
              help="Attribute classifier weights (default: the shipped one).")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=Path("build/eval/design_studio.json"),
              show_default=True, help="JSON report (a Markdown table goes beside it).")
@click.option("--threads", default=None, type=int, help="Torch CPU threads.")
def design_evaluate(data_dir: Path, limit: int | None, samples: int, editors: tuple[Path, ...],
                    designers: tuple[Path, ...], classifier: Path | None, out_file: Path,
                    threads: int | None) -> None:
    """Score the editor (SSIM, requested / untouched attributes) and the design generators
    (confident garments, kinds and patterns, Frechet distance) with the attribute classifier."""
    import torch

    from ._files import write_json_atomic, write_text_atomic
    from .models.zoo import load_generator, zoo_path
    from .train import design_eval
    from .train.attributes import load_classifier

    if threads:
        torch.set_num_threads(threads)
    judge = load_classifier(classifier)
    editor_files = list(editors) or [zoo_path("editor"), zoo_path("editor", float_twin=True)]
    designer_files = list(designers) or [zoo_path(n, float_twin=f) for n in ("designer", "dcgan")
                                         for f in (False, True)]
    report: dict = {"data": str(data_dir), "editor": {}, "designer": {}}
    with _user_errors(ValueError):                      # weights that are not an editor / a design generator
        report["editor"]["rendered targets"] = design_eval.evaluate_editor(None, judge, data_dir, limit)
        for path in editor_files:
            report["editor"][path.name] = design_eval.evaluate_editor(load_generator(path), judge, data_dir, limit)
        reference = design_eval.reference_features(judge, samples)
        report["designer"]["rendered garments"] = design_eval.evaluate_samples(None, judge, reference, samples)
        for path in designer_files:
            images = design_eval.sample_images(load_generator(path), samples)
            report["designer"][path.name] = design_eval.evaluate_samples(images, judge, reference)
    table = design_eval.markdown_report(report)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_file, report)
    write_text_atomic(out_file.with_suffix(".md"), table)
    click.echo(table)
    click.echo(f"wrote {out_file} and {out_file.with_suffix('.md')}")


def _edit_text(edit: dict):
    from .data.edits import edit_to_json

    return edit_to_json(edit).items()


@main.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("build/demo"), show_default=True)
@click.option("--pairs", "n_pairs", default=6, show_default=True, help="Try-on rows to show.")
@_backend_option
def demo(out_dir: Path, n_pairs: int, backend: str) -> None:
    """Make a small synthetic test set, run try-on and design, write build/demo/*.png."""
    from .demo import run_demo

    run_demo(out_dir, n_pairs=n_pairs, backend=backend, echo=click.echo)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 to serve the network: the page has no login).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--backend", default="auto", show_default=True,
              help="Where the models run: auto (the board if there is one, else cpu), cpu, sim or pynq.")
@click.option("--artifacts", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="A folder of artifact directories tryon/, editor/, designer/ (default: the zoo's, exported here).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="A VITON-HD style data set whose test split is the catalogue (default: a fresh synthetic one).")
@click.option("--max-upload-mb", default=8.0, show_default=True, type=click.FloatRange(0.01, 1024),
              help="Largest request body accepted; bigger uploads are refused before they are read.")
def serve(host: str, port: int, backend: str, artifacts: Path | None, data_dir: Path | None,
          max_upload_mb: float) -> None:
    """Serve the fitting room and design studio page (and its JSON API) in a browser."""
    import socket

    from .serve import ServeConfig, serve as run_server

    if artifacts is not None and not artifacts.is_dir():
        _fail(f"--artifacts {artifacts}: no such folder")
    if data_dir is not None and not (data_dir / "test_pairs.txt").is_file():
        _fail(f"--data {data_dir}: not a VITON-HD style data set (no test_pairs.txt)")
    with socket.socket() as probe:       # a clear message instead of uvicorn's bind traceback
        try:
            probe.bind((host, port))
        except OSError as exc:
            _fail(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port")
    config = ServeConfig(backend=backend, artifacts=artifacts, data=data_dir,
                         max_body=int(max_upload_mb * 1024 * 1024))
    click.echo(f"fpga_gan serving on http://{host}:{port}/  (backend {backend}; Ctrl-C stops)")
    run_server(config, host=host, port=port)


@main.command("compile")
@click.argument("model")
@click.option("--board", required=True, help="pynq-z2, ultra96, zcu104 or kv260.")
@click.option("--target-fps", type=POSITIVE, default=None,
              help="Frames per second to fold for (default: the fastest folding that fits the board).")
@click.option("--clock-mhz", type=POSITIVE, default=None, help="Clock (default: the board's usual clock).")
@click.option("--folding", "folding_file", type=click.Path(path_type=Path), default=None,
              help="A FINN folding JSON ({node: {PE, SIMD}}) to apply instead of automatic folding.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Build directory (default: build/<model>-<board>/).")
def compile_cmd(model: str, board: str, target_fps: float | None, clock_mhz: float | None,
                folding_file: Path | None, out_dir: Path | None) -> None:
    """Compile MODEL (a zoo name or a Brevitas QONNX file) into one dataflow partition of RTL layers.

    Vivado-free: stops at the folded, estimated RTL graph and writes report.json, report.md and
    cycles.png into the build directory. Every stage is checked bit-exact against the QONNX model.
    """
    from .compiler.pipeline import CompileConfig, compile_model

    cfg = CompileConfig(model=model, board=board, target_fps=target_fps, clock_mhz=clock_mhz,
                        folding_file=folding_file, out_dir=out_dir, log=click.echo)
    result = compile_model(cfg)
    totals, report = result.report["totals"], result.report
    click.echo(f"{report['model']} on {report['board']} at {report['clock_mhz']:g} MHz: "
               f"{totals['fps']:,.0f} FPS ({totals['cycles_per_frame']:,} cycles per frame), "
               f"LUT {totals['lut']:,.0f}, BRAM18 {totals['bram18']:,.0f}, URAM {totals['uram']:,.0f}, "
               f"DSP {totals['dsp']:,.0f}")
    click.echo(f"report: {result.build_dir / 'report.md'}")


@main.command("sim")
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--frames", default=4, show_default=True, help="Frames to simulate (each phase).")
@click.option("--backpressure", default=0.3, show_default=True,
              help="Probability of an idle input / stalled output cycle in the backpressure phase.")
@click.option("--waves", is_flag=True, help="Write an FST waveform (slower).")
@click.option("--seed", default=0, show_default=True)
@click.option("--size-fifos", is_flag=True,
              help="Measure FIFO peak fill again and re-size (done anyway when fifo_depths.json is missing).")
def sim_cmd(build_dir: Path, frames: int, backpressure: float, waves: bool, seed: int, size_fifos: bool) -> None:
    """Simulate a compiled BUILD_DIR in Verilator: frames bit-exact against FINN's Python execution.

    Writes BUILD_DIR/sim_report.json (frames, mismatches, cycles per frame, latency, FPS at the
    compile's clock, the compiler's estimate, the simulator).
    """
    from .sim.run import simulate

    report = simulate(build_dir, frames=frames, backpressure=backpressure, waves=waves, seed=seed,
                      size_fifos=size_fifos, log=click.echo)
    click.echo(f"{report['frames']} frames, {report['mismatches']} mismatches; {report['cycles_per_frame']:,} cycles "
               f"per frame (estimate {report['estimated_cycles_per_frame']:,}), {report['fps_at_clock']:,.0f} FPS at "
               f"{report['clock_mhz']:g} MHz; latency {report['latency_cycles']:,} cycles")
    click.echo(f"report: {Path(build_dir) / 'sim_report.json'}")


@main.command("trace")
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--input", "input_file", type=click.Path(path_type=Path), default=None,
              help="An .npy of input codes (shape of the model input; default: BUILD_DIR/verify_input.npy).")
def trace_cmd(build_dir: Path, input_file: Path | None) -> None:
    """Run one input through every backend of a compiled BUILD_DIR and print where two first disagree.

    Backends: the source QONNX model, ONNX Runtime on the QCDQ graph (when the build is an
    artifact), every saved stage NN_<stage>.onnx (tensor by tensor against the stage before),
    FINN's Python execution of the partition and the last RTL simulation's recorded frames.
    Exits 1 when two backends disagree.
    """
    from .compiler.trace import format_trace, trace_build

    result = trace_build(build_dir, input_file, log=lambda stage: click.echo(f"  running {stage}", err=True))
    click.echo(format_trace(result))
    if not result.ok:
        sys.exit(1)


# ------------------------------------------------------------------------------- board artifacts
def _board_options(func):
    func = click.option("--clock-mhz", type=POSITIVE, default=None, help="Clock (default: the board's usual clock).")(func)
    func = click.option("--target-fps", type=POSITIVE, default=None,
                        help="Frames per second to fold for (default: the fastest folding that fits).")(func)
    func = click.option("--build-dir", type=click.Path(path_type=Path), default=None,
                        help="Compile build directory (default: build/<model>-<board>/).")(func)
    func = click.option("--folding", "folding_file", type=click.Path(path_type=Path), default=None,
                        help="A FINN folding JSON, as for `fpga-gan compile --folding`.")(func)
    return click.option("--board", required=True, help="pynq-z2, ultra96, zcu104 or kv260.")(func)


def _board_compile_config(model: str, board: str, build_dir: Path | None, target_fps: float | None,
                          clock_mhz: float | None, folding_file: Path | None):
    """The one CompileConfig that `finn-build` / `bitstream` carry down (validated here)."""
    from .compiler.pipeline import CompileConfig

    return CompileConfig(model=model, board=board, target_fps=target_fps, clock_mhz=clock_mhz,
                         folding_file=folding_file, out_dir=build_dir, log=click.echo)


@main.command("finn-build")
@click.argument("model")
@_board_options
def finn_build_cmd(model: str, board: str, folding_file: Path | None, build_dir: Path | None,
                   target_fps: float | None, clock_mhz: float | None) -> None:
    """Write the directory FINN's `finn build` runs on a Vivado machine (GAN passes as a custom step).

    Compiles MODEL (resuming), sizes the FIFOs in Verilator, checks the design with its FIFOs fits
    the board and writes BUILD/finn-build/: model.onnx, dataflow_build_config.json, the folding
    and FIFO configs and custom_steps.py.
    """
    from .bitstream.build import prepare

    plan = prepare(_board_compile_config(model, board, build_dir, target_fps, clock_mhz, folding_file))
    click.echo(f"FINN build directory: {plan.handover} (see its README.md)")


@main.command("bitstream")
@click.argument("model")
@_board_options
@click.option("--out", "out_root", type=click.Path(path_type=Path), default=Path("bitstreams"), show_default=True,
              help="Artifacts go to OUT/<model>-<board>/.")
def bitstream_cmd(model: str, board: str, folding_file: Path | None, build_dir: Path | None,
                  target_fps: float | None, clock_mhz: float | None, out_root: Path) -> None:
    """Build the bitstream of MODEL for a board: everything Vivado-free here, then FINN + Vivado.

    Without a supported Vivado it stops after writing the compile, the RTL and the FINN build
    directory, and exits non-zero naming what is missing.
    """
    from .bitstream.build import build_bitstream

    artifact = build_bitstream(_board_compile_config(model, board, build_dir, target_fps, clock_mhz,
                                                     folding_file), out_root=out_root)
    click.echo(f"artifact: {artifact} (copy it to the board, then: fpga-gan selftest {artifact})")


@main.command("selftest", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def selftest_cmd(args: tuple[str, ...]) -> None:
    """Run N inputs through the hardware and the cpu backend: identical codes, images/s, latency.

    ARTIFACT [--n N] [--backend pynq|sim|cpu] [--seed S]; the same as
    `python -m fpga_gan.runtime.selftest`, which is what a board without this CLI runs.
    """
    from .runtime.selftest import main as selftest_main

    sys.exit(selftest_main(list(args)))


@main.command("deploy")
@click.argument("model")
@click.option("--board", required=True, help="pynq-z2, ultra96, zcu104 or kv260.")
@click.option("--artifact", type=click.Path(path_type=Path), default=None,
              help="Artifact directory (default: bitstreams/<model>-<board>/).")
@click.option("--cpu-only", is_flag=True,
              help="Without a bitstream: package the CPU fallback (the ONNX Runtime backend) for that board.")
@click.option("--samples", default=8, show_default=True, help="Sample inputs to include.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("dist"), show_default=True)
def deploy_cmd(model: str, board: str, artifact: Path | None, cpu_only: bool, samples: int, out_dir: Path) -> None:
    """Write dist/<model>-<board>.tar.gz: the runtime (numpy + pynq), the artifact, samples, a README."""
    from .bitstream.deploy import make_deploy

    tarball = make_deploy(model, board, artifact=artifact, cpu_only=cpu_only, samples=samples, out_dir=out_dir,
                          log=click.echo)
    click.echo(f"deploy package: {tarball}")


def _register_bench() -> None:
    from .bench.cli import bench        # imports click only; the harness loads what it measures when run

    main.add_command(bench, "bench")


_register_bench()


if __name__ == "__main__":
    main()
