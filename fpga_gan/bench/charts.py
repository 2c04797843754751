"""PNG charts of a bench run: CPU images/s, accelerator FPS (and targets), GOPS against the bound,
zero-free vs zero-insertion MACs. Drawn from bench.json alone, like the markdown.

Why the Agg backend: the bench runs headless (make, CI); choosing it before pyplot is imported
keeps matplotlib from looking for a display.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_charts"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bar_chart(path: Path, labels: list[str], series: dict[str, list[float]], *, title: str, ylabel: str,
               log_scale: bool = True, width: float = 7, hlines: tuple[float, ...] = ()) -> Path:
    """Grouped bars, one group per label and one bar per series, saved as a PNG at ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(width, 4))
    bar = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x + i * bar for x in range(len(labels))], [v or 0 for v in values], bar, label=name)
    ax.set_xticks([x + bar * (len(series) - 1) / 2 for x in range(len(labels))])
    ax.set_xticklabels(labels, rotation=20, ha="right")
    ax.legend(fontsize=8)
    for y in hlines:
        ax.axhline(y, ls="--", lw=0.8, color="grey")
    if log_scale:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cpu_chart(bench: dict, out: Path) -> Path | None:
    rows = bench["cpu"]
    if not rows:
        return None
    return _bar_chart(out / "cpu_inference.png", [f"{r['model']} b{r['batch']}" for r in rows],
                      {"float twin eager": [r["float_twin_eager"] for r in rows],
                       "Brevitas eager": [r["brevitas_eager"] for r in rows],
                       "ONNX Runtime QCDQ": [r["onnxruntime_qcdq"] for r in rows]},
                      title="CPU inference", ylabel="images / s (measured)")


def _fps_chart(bench: dict, out: Path) -> Path | None:
    rows = [r for r in bench["accelerators"] if r["status"] == "ok"]
    if not rows:
        return None
    return _bar_chart(out / "accelerator_fps.png", [r["case"] for r in rows],
                      {"simulated": [r["fps_sim"] for r in rows],
                       "estimated (FINN)": [r["fps_estimate"] for r in rows]},
                      title="Accelerator throughput (dashed: targets)", ylabel="frames / s at the clock",
                      hlines=tuple(t["threshold"] for t in bench["targets"] if t["kind"] == "accel_fps"))


def _gops_chart(bench: dict, out: Path) -> Path | None:
    rows = [r for r in bench["accelerators"] if r["status"] == "ok" and r["bound_gops"]]
    if not rows:
        return None
    return _bar_chart(out / "accelerator_gops.png", [r["case"] for r in rows],
                      {"reached": [r["gops"] for r in rows], "DSP bound": [r["bound_gops"] for r in rows]},
                      title="Reached vs physical bound", ylabel="GOPS (2 x MACs x FPS)", log_scale=False)


def _deconv_chart(bench: dict, out: Path) -> Path | None:
    seen, rows = set(), []
    for r in bench["deconv"]:                       # MACs do not depend on the board: one bar per layer
        if (r["model"], r["layer"]) not in seen:
            seen.add((r["model"], r["layer"]))
            rows.append(r)
    if not rows:
        return None
    return _bar_chart(out / "deconv_macs.png", [f"{r['model']} {r['layer']}" for r in rows],
                      {"useful": [r["macs_useful"] for r in rows], "zero-free": [r["macs_zero_free"] for r in rows],
                       "zero insertion": [r["macs_zero_insertion"] for r in rows]},
                      title="Transposed convolutions", ylabel="MACs per frame (counted)", width=8)


def write_charts(bench: dict, out: Path) -> list[Path]:
    """Every chart that has data, as PNGs in ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    charts = (_cpu_chart(bench, out), _fps_chart(bench, out), _gops_chart(bench, out), _deconv_chart(bench, out))
    return [c for c in charts if c is not None]
