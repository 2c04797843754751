"""Copy the trained design-studio models into fpga_gan/zoo and write their model cards
(fpga_gan/zoo/STUDIO.md, studio_cards.json): garment editor, design generator, attribute classifier.

The cards' figures are ``fpga-gan design evaluate`` on the whole held-out split of the edit data
set and on 1,000 design samples, so they are the numbers the README quotes.

    .venv/bin/python tools/ship_studio.py --data build/data/edits-20k --runs build/train
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from fpga_gan._files import write_json_atomic, write_text_atomic
from fpga_gan.models.zoo import ZOO_DIR, load_generator, save_generator, zoo_path
from fpga_gan.train import design_eval
from fpga_gan.train.attributes import CLASSIFIER_FILE, load_classifier, save_classifier

# zoo file -> run directory below --runs
GENERATORS = {"editor_w4a4.pt": "editor_w4a4", "editor_float.pt": "editor_float",
              "designer_w4a4.pt": "designer_w4a4", "designer_float.pt": "designer_float"}
CLASSIFIER_RUN = "attributes"


def _flag(name: str, value) -> str:
    return f" --{name.replace('_', '-')} {value}"


def command(run: dict) -> str:
    """The ``fpga-gan train`` command line a run's metrics.json records."""
    t = run["config"]["train"]
    model = run["model"]
    if model == "editor":
        cmd = (f"fpga-gan train editor --data {t['data']} --out {t['out']} --steps {t['steps']} --batch {t['batch']} "
               f"--lr {t['lr']} --widths {','.join(map(str, t['widths']))} --size {t['size'][0]}x{t['size'][1]} "
               f"--seed {t['seed']}")
        for key in ("lr_decay_from", "init_from"):
            if t.get(key) is not None:
                cmd += _flag(key, t[key])
        cmd += _flag("adv_weight", t["adv_weight"]) + _flag("ssim_weight", t["ssim_weight"])
    elif model == "designer":
        cmd = (f"fpga-gan train designer --out {t['out']} --steps {t['steps']} --batch {t['batch']} --lr {t['lr']} "
               f"--ngf {t['ngf']} --garments {t['garments']} --data-seed {t['data_seed']} "
               f"--ssim-weight {t['ssim_weight']} --chroma-weight {t['chroma_weight']} --seed {t['seed']}")
        if t.get("init_from"):
            cmd += _flag("init_from", t["init_from"])
    else:
        cmd = (f"fpga-gan train attributes --out {t['out']} --steps {t['steps']} --batch {t['batch']} --lr {t['lr']} "
               f"--width {t['width']} --garments {t['garments']} --data-seed {t['data_seed']} --seed {t['seed']}")
    if t.get("learned_act_scale"):
        cmd += " --learned-act-scale"
    if t.get("threads"):
        cmd += _flag("threads", t["threads"])
    if model != "attributes":
        cmd += (f" --weight-bits {t['weight_bits']} --act-bits {t['act_bits']}" if t.get("quantized", True)
                else " --float")
    return cmd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the edit data set the editor trained on")
    ap.add_argument("--runs", type=Path, default=Path("build/train"))
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--only", choices=("designer",), default=None,
                    help="ship only the design generator's runs; the other cards and figures stay as shipped")
    args = ap.parse_args()
    torch.set_num_threads(2)

    if args.only:
        ship_designer_only(args)
        return
    cards: dict = {run_name: _ship_generator(args.runs, zoo_file, run_name)
                   for zoo_file, run_name in GENERATORS.items()}
    run = json.loads((args.runs / CLASSIFIER_RUN / "metrics.json").read_text())
    judge = load_classifier(args.runs / CLASSIFIER_RUN / CLASSIFIER_FILE)
    save_classifier(judge, ZOO_DIR / CLASSIFIER_FILE, {"metrics": run["held_out"]})
    cards["attributes"] = {"command": command(run), "train_seconds": run.get("train_seconds_this_run"),
                           "held_out": run["held_out"], "params": sum(p.numel() for p in judge.parameters()),
                           "bytes": (ZOO_DIR / CLASSIFIER_FILE).stat().st_size}

    report = {"editor": {}, "designer": {}}
    report["editor"]["rendered targets"] = design_eval.evaluate_editor(None, judge, args.data)
    for name in ("editor_w4a4.pt", "editor_float.pt"):
        report["editor"][name] = design_eval.evaluate_editor(load_generator(ZOO_DIR / name), judge, args.data)
    reference = design_eval.reference_features(judge, args.samples)
    report["designer"]["rendered garments"] = design_eval.evaluate_samples(None, judge, reference, args.samples)
    for path in (zoo_path("designer"), zoo_path("designer", True), zoo_path("dcgan"), zoo_path("dcgan", True)):
        images = design_eval.sample_images(load_generator(path), args.samples)
        report["designer"][path.name] = design_eval.evaluate_samples(images, judge, reference)
    cards["evaluation"] = report
    write_json_atomic(ZOO_DIR / "studio_cards.json", cards)
    write_text_atomic(ZOO_DIR / "STUDIO.md", card_text(cards, args.data))


def _ship_generator(runs: Path, zoo_file: str, run_name: str) -> dict:
    run = json.loads((runs / run_name / "metrics.json").read_text())
    model = load_generator(runs / run_name / "generator.pt")
    save_generator(model, ZOO_DIR / zoo_file, {"metrics": run["held_out"]})
    shutil.copy(runs / run_name / "loss.png", ZOO_DIR / f"{run_name}_loss.png")
    return {"command": command(run), "train_seconds": run.get("train_seconds_this_run"),
            "training_held_out": run["held_out"], "params": sum(p.numel() for p in model.parameters()),
            "bytes": (ZOO_DIR / zoo_file).stat().st_size}


def ship_designer_only(args) -> None:
    """A retrained design generator: its two runs into the zoo, its card and sample figures redone."""
    cards = json.loads((ZOO_DIR / "studio_cards.json").read_text())
    for zoo_file, run_name in GENERATORS.items():
        if run_name.startswith("designer"):
            cards[run_name] = _ship_generator(args.runs, zoo_file, run_name)
    judge = load_classifier(ZOO_DIR / CLASSIFIER_FILE)
    report = {"rendered garments": None}
    reference = design_eval.reference_features(judge, args.samples)
    report["rendered garments"] = design_eval.evaluate_samples(None, judge, reference, args.samples)
    for path in (zoo_path("designer"), zoo_path("designer", True), zoo_path("dcgan"), zoo_path("dcgan", True)):
        images = design_eval.sample_images(load_generator(path), args.samples)
        report[path.name] = design_eval.evaluate_samples(images, judge, reference)
    cards["evaluation"]["designer"] = report
    write_json_atomic(ZOO_DIR / "studio_cards.json", cards)
    write_text_atomic(ZOO_DIR / "STUDIO.md", card_text(cards, args.data))


def card_text(cards: dict, data: Path) -> str:
    meta = json.loads((data / "edits.json").read_text())
    acc = cards["attributes"]["held_out"]
    lines = [
        "# Design studio models (model cards)",
        "",
        "Written by `tools/ship_studio.py`; `make weights-studio` retrains them from scratch on the CPU.",
        "The figures are `fpga-gan design evaluate` (PyTorch, whose output codes equal every backend's).",
        "",
        "## Data",
        "",
        f"Edits: `fpga-gan data make-edits --out {data} --n {meta['n']} --seed {meta['seed']} "
        f"--size {meta['size'][0]}x{meta['size'][1]}` ({meta['counts']['train']} training triples, "
        f"{meta['counts']['test']} held-out triples on garments the training split never shows).",
        "Designer and classifier: garments rendered on the fly from their own data seeds (half from the "
        "world's prior, half the targets of random edits).",
        "",
        "## Weights",
        "",
        "| file | what | bits | params | file size |",
        "|---|---|---|---|---|",
    ]
    rows = (("editor_w4a4", "garment editor (U-Net 16/32/64/64, 36 input planes)", "W4A4, 8-bit input/first/last"),
            ("editor_float", "garment editor, float twin", "float"),
            ("designer_w4a4", "design generator (DCGAN-64, ngf 32, 40-value design code)",
             "W4A4, 8-bit code/first/last"),
            ("designer_float", "design generator, float twin", "float"),
            ("attributes", "garment attribute classifier (judge; not deployed)", "float"))
    for name, what, bits in rows:
        card = cards[name]
        file = "attributes.pt" if name == "attributes" else f"{name}.pt"
        lines.append(f"| `{file}` | {what} | {bits} | {card['params']:,} | {card['bytes'] / 1e6:.1f} MB |")
    lines += ["", "## Held-out figures", "", design_eval.markdown_report(cards["evaluation"]).strip(), "",
              "The classifier on garments it never saw (half of them edited): "
              + ", ".join(f"{k} {100 * v:.1f}%" for k, v in acc["agreement"].items())
              + f"; confident garment kind {100 * acc['confident_garment_kind']:.1f}%, non-garments rejected "
              f"{100 * acc['non_garments_rejected']:.1f}%.", "", "## Commands", ""]
    for name, card in cards.items():
        if name == "evaluation":
            continue
        seconds = card.get("train_seconds") or 0
        minutes = f" ({seconds / 60:.0f} min on this machine's CPU, sharing it)" if seconds >= 60 else ""
        lines += [f"`{name}`{minutes}:", "", "    " + card["command"], ""]
    lines += ["Loss curves: `*_loss.png` beside this file."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
