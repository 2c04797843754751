"""Copy trained generators into fpga_gan/zoo and write their model cards (fpga_gan/zoo/README.md).

Evaluates the try-on pair (W4A4 and float twin) on the WHOLE held-out test split of the data set
they trained on, so the card's numbers are not the training loop's 256-image estimate.

    .venv/bin/python tools/ship_weights.py --data build/data/synth-16k --runs build/train
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from fpga_gan.data import load_arrays
from fpga_gan.models.zoo import ZOO_DIR, load_generator, save_generator
from fpga_gan.train.tryon import evaluate

RUNS = {"tryon_w4a4": "tryon_w4a4.pt", "tryon_float": "tryon_float.pt",
        "dcgan_w4a4": "dcgan_w4a4.pt", "dcgan_float": "dcgan_float.pt"}
# Fine-tuning rounds after a base run, in order (run directories below --runs): the shipped
# weights are the last round's; the card lists every command. Each round starts from the one
# before (its --init-from), with a growing weight on the (1 - SSIM) loss.
FINE_TUNES = {
    "tryon_w4a4": ["ft/w4a4_ssim30", "ft/w4a4_ssim100", "ft/w4a4_ssim300"],
    "tryon_float": ["ft/float_ssim30", "ft/float_ssim100", "ft/float_ssim300"],
}


def _command(run: dict) -> str:
    t = run["config"]["train"]
    if run["model"] == "tryon":
        cmd = (f"fpga-gan train tryon --data {{DATA}} --out build/train/{{RUN}} --steps {t['steps']} "
               f"--batch {t['batch']} --lr {t['lr']} --widths {','.join(map(str, t['widths']))} "
               f"--size {t['size'][0]}x{t['size'][1]} --seed {t['seed']}")
    else:
        cmd = (f"fpga-gan train dcgan --out build/train/{{RUN}} --steps {t['steps']} --batch {t['batch']} "
               f"--lr {t['lr']} --ngf {t['ngf']} --nz {t['nz']} --garments {t['garments']} "
               f"--data-seed {t['data_seed']} --seed {t['seed']}")
    if t.get("learned_act_scale"):
        cmd += " --learned-act-scale"
    if t.get("init_from"):
        cmd += f" --init-from {t['init_from']}"
    if t.get("lr_decay_from") is not None:
        cmd += f" --lr-decay-from {t['lr_decay_from']}"
    if run["model"] == "dcgan" and "adv_weight" in t:
        cmd += f" --adv-weight {t['adv_weight']}"
    if run["model"] == "tryon" and t.get("ssim_weight"):
        cmd += f" --adv-weight {t['adv_weight']} --ssim-weight {t['ssim_weight']}"
    if t.get("threads"):
        cmd += f" --threads {t['threads']}"
    if t.get("quantized", True):
        cmd += f" --weight-bits {t['weight_bits']} --act-bits {t['act_bits']}"
    else:
        cmd += " --float"
    return cmd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--runs", type=Path, default=Path("build/train"))
    args = ap.parse_args()
    torch.set_num_threads(2)

    dataset = json.loads((args.data / "dataset.json").read_text())
    test = load_arrays(args.data, "test", size=tuple(dataset["size"]))
    cards = {}
    for run_name, zoo_file in RUNS.items():
        chain = [run_name, *FINE_TUNES.get(run_name, [])]
        runs = [json.loads((args.runs / name / "metrics.json").read_text()) for name in chain]
        final_dir = args.runs / chain[-1]
        model = load_generator(final_dir / "generator.pt")
        extra = {}
        if runs[-1]["model"] == "tryon":
            extra["held_out"] = evaluate(model, test["x"], test["y"])
        save_generator(model, ZOO_DIR / zoo_file, {"metrics": extra or runs[-1].get("final_losses")})
        shutil.copy(final_dir / "loss.png", ZOO_DIR / f"{run_name}_loss.png")
        commands = [_command(run).replace("{RUN}", name) for name, run in zip(chain, runs)]
        # the first round ran from the shipped base weights, which this script is about to replace:
        # name the base run's own output (the same weights) so the commands stay reproducible
        commands[1:2] = [c.replace(f"--init-from fpga_gan/zoo/{zoo_file}",
                                   f"--init-from build/train/{run_name}/generator.pt") for c in commands[1:2]]
        cards[run_name] = {"command": commands[0], "fine_tune_commands": commands[1:], "run": runs[0],
                           "fine_tune_seconds": sum(r.get("train_seconds_this_run", 0) for r in runs[1:]),
                           **extra, "params": sum(p.numel() for p in model.parameters()),
                           "bytes": (ZOO_DIR / zoo_file).stat().st_size}
    (ZOO_DIR / "cards.json").write_text(json.dumps(cards, indent=2) + "\n")
    write_readme(cards, dataset, args.data)


def write_readme(cards: dict, dataset: dict, data_dir: Path) -> None:
    data_cmd = (f"fpga-gan data make --out {data_dir} --n {dataset['n']} --seed {dataset['seed']} "
                f"--size {dataset['size'][0]}x{dataset['size'][1]}")
    tq, tf = cards["tryon_w4a4"]["held_out"], cards["tryon_float"]["held_out"]
    lines = [
        "# Shipped weights (model cards)",
        "",
        "Written by `tools/ship_weights.py`; `make weights` retrains all four from scratch on the CPU.",
        "The design studio's editor, design generator and attribute classifier have their cards in "
        "[`STUDIO.md`](STUDIO.md) (`make weights-studio`).",
        "",
        "## Data",
        "",
        f"Synthetic try-on world, generator version {dataset['generator_version']}, made with",
        "",
        f"    {data_cmd}",
        "",
        f"({dataset['counts']['train']} training pairs, {dataset['counts']['test']} held-out unpaired test pairs "
        "with rendered ground truth.)",
        "",
        "## tryon (U-Net try-on generator)",
        "",
        "| weights | bits | SSIM (held-out) | PSNR (dB) | params | file size |",
        "|---|---|---|---|---|---|",
        f"| `tryon_w4a4.pt` | W4A4, 8-bit input/first/last | {tq['ssim']:.4f} | {tq['psnr']:.2f} | "
        f"{cards['tryon_w4a4']['params']:,} | {cards['tryon_w4a4']['bytes'] / 1e6:.1f} MB |",
        f"| `tryon_float.pt` | float twin | {tf['ssim']:.4f} | {tf['psnr']:.2f} | "
        f"{cards['tryon_float']['params']:,} | {cards['tryon_float']['bytes'] / 1e6:.1f} MB |",
        "",
        f"Quantization gap: SSIM {tf['ssim'] - tq['ssim']:+.4f} (float minus W4A4), evaluated on all "
        f"{tq['images']} held-out pairs (scikit-image SSIM, 7x7 window, on the 8-bit output codes).",
        "",
        "## dcgan (garment design generator)",
        "",
        "| weights | bits | final G / D loss | params | file size |",
        "|---|---|---|---|---|",
    ]
    for name, desc in (("dcgan_w4a4", "W4A4, 8-bit latent/first/last"), ("dcgan_float", "float twin")):
        fl = cards[name]["run"]["final_losses"]
        lines.append(f"| `{name}.pt` | {desc} | {fl['g']:.3f} / {fl['d']:.3f} | {cards[name]['params']:,} | "
                     f"{cards[name]['bytes'] / 1e6:.1f} MB |")
    lines += ["", "## Commands", ""]
    for name, card in cards.items():
        secs = card["run"].get("train_seconds_this_run")
        lines += [f"`{name}` ({secs / 60:.0f} min on this machine's CPU, sharing 2 cores with the other runs):",
                  "", "    " + card["command"].replace("{DATA}", str(data_dir)), ""]
        if card["fine_tune_commands"]:
            lines += [f"then fine-tuned with an SSIM loss in {len(card['fine_tune_commands'])} rounds, each from "
                      f"the one before ({card['fine_tune_seconds'] / 60:.0f} min in all):", ""]
            lines += ["    " + cmd.replace("{DATA}", str(data_dir)) for cmd in card["fine_tune_commands"]]
            lines += [""]
    lines += ["`build/train/tryon_float_5k.pt` is the float twin after 5000 steps: run the `tryon_float` "
              "command with `--steps 5000`, copy its `generator.pt` there, then continue it with "
              "`--steps 10000 --resume` (a resumed run equals an uninterrupted one; `make weights` does "
              "exactly this). QAT from that float start reached a held-out SSIM of 0.74 after 3000 "
              "steps where W4A4 trained from scratch reached 0.66.", ""]
    lines += ["Loss curves: `*_loss.png` beside this file. Training is deterministic on the CPU with a fixed "
              "`--threads`: the same commands give the same weights."]
    (ZOO_DIR / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
