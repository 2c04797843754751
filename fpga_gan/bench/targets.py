"""The issue's targets, checked against this run's figures: met, missed (and by how much), or not measured.

Why here and not in tests: a target is a statement about the measured design on this machine;
a test that asserted it would fail on a slower machine or block a change that trades speed for
area. The table shows it instead, with the number.
"""

from __future__ import annotations

from .config import Target, model_stem

__all__ = ["evaluate_targets"]


def _result(target: Target, value: float | None, provenance: str, detail: str = "") -> dict:
    met = None if value is None else value >= target.threshold
    return {"title": target.title, "kind": target.kind, "value": value, "threshold": target.threshold,
            "unit": target.unit, "met": met,
            "shortfall_pct": None if value is None or met else 100 * (1 - value / target.threshold),
            "provenance": provenance, "detail": detail}


def _accel_fps(target: Target, accel: list[dict]) -> dict:
    rows = [r for r in accel if r["model"] == model_stem(target.model) and r["board"] == target.board]
    if not rows:
        return _result(target, None, "not measured: no such case in this run")
    row = rows[0]
    if row["status"] != "ok":
        return _result(target, None, f"not measured: {row['status']}", row["message"].split("\n")[0])
    if target.clock_mhz is not None and row["clock_mhz"] != target.clock_mhz:
        return _result(target, None, "not measured: the case ran at another clock",
                       f"case clock {row['clock_mhz']} MHz")
    return _result(target, row["fps"], row["fps_source"], row["case"])


def _cpu_ratio(target: Target, cpu: list[dict]) -> dict:
    rows = [r for r in cpu if r["model"] == target.model and r["batch"] == target.batch]
    if not rows:
        return _result(target, None, "not measured: no such CPU row in this run")
    return _result(target, rows[0]["ort_vs_brevitas"], rows[0]["provenance"]["ort_vs_brevitas"])


def _deconv_ratio(target: Target, deconv: list[dict]) -> dict:
    """The worst k4s2 layer of the model decides; the MAC counts do not depend on the board's
    folding, so the first case of the model stands for all of them."""
    rows = [r for r in deconv if r["model"] == model_stem(target.model) and r["kernel"] == 4 and r["stride"] == 2]
    if not rows:
        return _result(target, None, "not measured: no k4s2 layer of this model in this run")
    first_case = rows[0]["case"]
    rows = [r for r in rows if r["case"] == first_case]
    worst = min(rows, key=lambda r: r["macs_ratio"])
    passing = sum(r["macs_ratio"] >= target.threshold for r in rows)
    return _result(target, worst["macs_ratio"], rows[0]["provenance"]["macs"],
                   f"worst layer {worst['layer']}; {passing} of {len(rows)} k4s2 layers reach the threshold")


_KINDS = {"accel_fps": ("accelerators", _accel_fps), "cpu_ratio": ("cpu", _cpu_ratio),
          "deconv_ratio": ("deconv", _deconv_ratio)}


def evaluate_targets(targets: tuple[Target, ...], bench: dict) -> list[dict]:
    """One row per target, from the sections of ``bench`` the target's kind reads."""
    rows = []
    for target in targets:
        if target.kind not in _KINDS:
            raise ValueError(f"unknown target kind {target.kind!r}; known: {', '.join(_KINDS)}")
        section, check = _KINDS[target.kind]
        rows.append(check(target, bench.get(section, [])))
    return rows
