"""The issue's targets, checked against this run's figures: met, missed (and by how much), or not measured.

Why here and not in tests: a target is a statement about the measured design on this machine;
a test that asserted it would fail on a slower machine or block a change that trades speed for
area. The table shows it instead, with the number.
"""

from __future__ import annotations

from .config import Target, model_stem

__all__ = ["BOUNDARY_OPS", "YES_NO_KINDS", "evaluate_targets"]

# Target kinds whose value is yes or no (threshold 1, compared exactly): met or missed, never "short by".
YES_NO_KINDS = frozenset({"rtl_partition"})


def _met(value: float, threshold: float, compare: str) -> bool:
    return {">=": value >= threshold, "<=": value <= threshold, "==": value == threshold}[compare]


def _result(target: Target, value: float | bool | None, provenance: str, detail: str = "") -> dict:
    """One row of the targets table. A yes / no target (:data:`YES_NO_KINDS`) has a bool ``value``
    and no shortfall. ``shortfall_pct`` is how far a missed value is from the threshold, in % of
    it: short of an at-least target, over an at-most one, off an exact one."""
    yes_no = target.kind in YES_NO_KINDS
    met = None if value is None else _met(value, target.threshold, target.compare)
    far = (None if value is None or met or yes_no or not target.threshold
           else 100 * abs(value / target.threshold - 1))
    return {"title": target.title, "kind": target.kind, "value": value, "threshold": target.threshold,
            "compare": target.compare, "unit": target.unit, "yes_no": yes_no, "met": met, "shortfall_pct": far,
            "provenance": provenance, "detail": detail}


def _first_line(text: str) -> str:
    """The gist of an error for a table cell: its first line, and the next one when the first
    only announces a list ("these nodes cannot be streamed by the RTL layers:")."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or [""]
    if lines[0].endswith(":") and len(lines) > 1:
        more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
        return f"{lines[0]} {lines[1]}{more}"
    return lines[0]


def _case_row(target: Target, accel: list[dict]) -> dict | None:
    rows = [r for r in accel if r["model"] == model_stem(target.model) and r["board"] == target.board]
    return rows[0] if rows else None


def _not_compiled(target: Target, row: dict | None) -> dict | None:
    """The "not measured" result of a case missing from the run or whose compile failed, else None."""
    if row is None:
        return _result(target, None, "not measured: no such case in this run")
    if row["status"] != "ok":
        return _result(target, None, f"not measured: {row['status']}", _first_line(row["message"]))
    return None


def _accel_fps(target: Target, accel: list[dict]) -> dict:
    row = _case_row(target, accel)
    if (missing := _not_compiled(target, row)) is not None:
        return missing
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


# Op types a compiled design may keep outside its dataflow partition: layout changes at the
# boundary (the host's NCHW against the stream's NHWC, a label's reshape) and the output's
# dequantizing scale, which the runtime applies to the codes the accelerator returns.
BOUNDARY_OPS = frozenset({"Transpose", "Reshape", "Mul"})

_STRUCTURE = ("checked: the compiled model's dataflow partitions, the op types of the layers inside and "
              "outside them, and the compiler's fit check against the board's budget")


def _rtl_partition(target: Target, accel: list[dict]) -> dict:
    """Yes when the case compiled to one dataflow partition, every layer in it an RTL layer, only
    :data:`BOUNDARY_OPS` outside it, and the estimate fits the board. A compile that failed
    (it does not fit, or it cannot be compiled) is a no, with the compiler's first line as detail."""
    row = _case_row(target, accel)
    if row is None:
        return _result(target, None, "not measured: no such case in this run")
    if row["status"] != "ok":
        return _result(target, False, _STRUCTURE, f"{row['status']}: {_first_line(row['message'])}")
    s = row["structure"]
    outside = sorted(set(s["outside_partition"]) - BOUNDARY_OPS)
    problems = ([f"{s['partitions']} partitions"] if s["partitions"] != 1 else []) + \
        ([f"not RTL: {', '.join(s['non_rtl_layers'])}"] if s["non_rtl_layers"] else []) + \
        ([f"outside the partition: {', '.join(outside)}"] if outside else []) + \
        ([] if row["fits"] else [f"does not fit {row['board']}"])
    use = ", ".join(f"{k.upper()} {res['pct']:.0f}%" for k, res in row["resources"].items() if res["pct"] is not None)
    detail = f"{s['partitions']} partition of {s['layers']} RTL layers; fits {row['board']} ({use})"
    return _result(target, not problems, _STRUCTURE, "; ".join(problems) if problems else detail)


def _sim_vs_estimate(target: Target, accel: list[dict]) -> dict:
    """|simulated / estimated cycles per frame - 1| in %, for a case that was simulated."""
    row = _case_row(target, accel)
    if (missing := _not_compiled(target, row)) is not None:
        return missing
    if row["sim_error"]:
        return _result(target, None, "not measured: the simulation failed", _first_line(row["sim_error"]))
    if not row["simulated"]:
        return _result(target, None, "not measured: the case is not simulated in this run")
    sim, est = row["cycles_per_frame_sim"], row["cycles_per_frame_estimate"]
    mismatches = f"; {row['sim_mismatches']} mismatching frames" if row["sim_mismatches"] else ""
    return _result(target, 100 * abs(sim / est - 1),
                   "derived: |simulated / estimated cycles per frame - 1| (Verilator, back-to-back frames; "
                   "FINN's cost model, slowest layer)",
                   f"simulated {sim:,} / estimated {est:,} cycles per frame{mismatches}")


def _not_multiple(row: dict) -> bool:
    """A transposed convolution whose kernel is not a multiple of its stride in some dimension."""
    return any(k % row["stride"] for k in row.get("kernel_shape") or [row["kernel"]] * 2)


def _deconv_useful(target: Target, deconv: list[dict]) -> dict:
    """MACs spent / useful MACs of every k % s != 0 transposed convolution (of ``target.model``,
    or of every model in the run); the layer furthest from 1 is the value. Each layer's ratio to
    zero insertion is in the detail. MAC counts do not depend on the board's folding, so the first
    case of each model stands for all of them."""
    rows = [r for r in deconv if _not_multiple(r)
            and (target.model is None or r["model"] == model_stem(target.model))]
    first_case: dict[str, str] = {}
    for r in rows:
        first_case.setdefault(r["model"], r["case"])
    rows = [r for r in rows if r["case"] == first_case[r["model"]]]
    if not rows:
        return _result(target, None, "not measured: no transposed convolution with k % s != 0 in this run")
    ratios = [r["macs_zero_free"] / r["macs_useful"] for r in rows]
    worst = max(range(len(rows)), key=lambda i: abs(ratios[i] - 1))
    layers = [f"{r['case']} {r['layer']} {r['geometry']}: {x:.2f}x spent / useful, {r['macs_ratio']:.2f}x zero "
              "insertion" for r, x in zip(rows, ratios)]
    exact = sum(x == 1 for x in ratios)
    return _result(target, ratios[worst], rows[0]["provenance"]["macs"],
                   f"{exact} of {len(rows)} layers spend exactly the useful MACs: " + "; ".join(layers))


def _serve_errors(target: Target, serve: dict) -> dict:
    if not serve:
        return _result(target, None, "not measured: no load run in this run")
    return _result(target, serve["errors"], serve["provenance"],
                   f"{serve['requests']} requests from {serve['clients']} clients, {serve['backend']} backend")


_KINDS = {"accel_fps": ("accelerators", _accel_fps), "cpu_ratio": ("cpu", _cpu_ratio),
          "deconv_ratio": ("deconv", _deconv_ratio), "rtl_partition": ("accelerators", _rtl_partition),
          "sim_vs_estimate": ("accelerators", _sim_vs_estimate), "deconv_useful": ("deconv", _deconv_useful),
          "serve_errors": ("serve", _serve_errors)}


def evaluate_targets(targets: tuple[Target, ...], bench: dict) -> list[dict]:
    """One row per target, from the sections of ``bench`` the target's kind reads."""
    rows = []
    for target in targets:
        if target.kind not in _KINDS:
            raise ValueError(f"unknown target kind {target.kind!r}; known: {', '.join(_KINDS)}")
        section, check = _KINDS[target.kind]
        rows.append(check(target, bench.get(section, [])))
    return rows
