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


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def _bars(ax, labels: list[str], series: dict[str, list[float]]) -> None:
    """Grouped bars: one group per label, one bar per series."""
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(labels))], [v or 0 for v in values], width, label=name)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))])
    ax.set_xticklabels(labels, rotation=20, ha="right")
    ax.legend(fontsize=8)


def _cpu_chart(bench: dict, out: Path) -> Path | None:
    rows = bench["cpu"]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    _bars(ax, [f"{r['model']} b{r['batch']}" for r in rows],
          {"float twin eager": [r["float_twin_eager"] for r in rows],
           "Brevitas eager": [r["brevitas_eager"] for r in rows],
           "ONNX Runtime QCDQ": [r["onnxruntime_qcdq"] for r in rows]})
    ax.set_yscale("log")
    ax.set_ylabel("images / s (measured)")
    ax.set_title("CPU inference")
    return _save(fig, out / "cpu_inference.png")


def _fps_chart(bench: dict, out: Path) -> Path | None:
    rows = [r for r in bench["accelerators"] if r["status"] == "ok"]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    _bars(ax, [r["case"] for r in rows], {"simulated": [r["fps_sim"] for r in rows],
                                          "estimated (FINN)": [r["fps_estimate"] for r in rows]})
    for t in bench["targets"]:
        if t["kind"] == "accel_fps":
            ax.axhline(t["threshold"], ls="--", lw=0.8, color="grey")
    ax.set_yscale("log")
    ax.set_ylabel("frames / s at the clock")
    ax.set_title("Accelerator throughput (dashed: targets)")
    return _save(fig, out / "accelerator_fps.png")


def _gops_chart(bench: dict, out: Path) -> Path | None:
    rows = [r for r in bench["accelerators"] if r["status"] == "ok" and r["bound_gops"]]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    _bars(ax, [r["case"] for r in rows], {"reached": [r["gops"] for r in rows],
                                          "DSP bound": [r["bound_gops"] for r in rows]})
    ax.set_ylabel("GOPS (2 x MACs x FPS)")
    ax.set_title("Reached vs physical bound")
    return _save(fig, out / "accelerator_gops.png")


def _deconv_chart(bench: dict, out: Path) -> Path | None:
    seen, rows = set(), []
    for r in bench["deconv"]:                       # MACs do not depend on the board: one bar per layer
        if (r["model"], r["layer"]) not in seen:
            seen.add((r["model"], r["layer"]))
            rows.append(r)
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    _bars(ax, [f"{r['model']} {r['layer']}" for r in rows],
          {"useful": [r["macs_useful"] for r in rows], "zero-free": [r["macs_zero_free"] for r in rows],
           "zero insertion": [r["macs_zero_insertion"] for r in rows]})
    ax.set_yscale("log")
    ax.set_ylabel("MACs per frame (counted)")
    ax.set_title("Transposed convolutions")
    return _save(fig, out / "deconv_macs.png")


def write_charts(bench: dict, out: Path) -> list[Path]:
    """Every chart that has data, as PNGs in ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    charts = (_cpu_chart(bench, out), _fps_chart(bench, out), _gops_chart(bench, out), _deconv_chart(bench, out))
    return [c for c in charts if c is not None]
