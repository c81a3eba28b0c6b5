"""What the check on write must show before an export counts as written.

``converters.export`` streams held-out data through every new step-mode artifact (see
``converters.verify``). With ``--min-agreement`` / ``--max-rmse-change`` that check is a
gate: a miss is one ``FAIL:`` line, exit status 1, and no file. Without them, a result
that should not go unnoticed (class agreement below 97 %, an error that is not finite)
is a warning naming the cause or the better mode.

Every comparison fails on NaN and inf, and a gate fails when its figure could not be
measured at all (no targets, synthetic inputs): a gate that cannot see must not pass.
"""

from __future__ import annotations

from edgelstm.core.metrics import finite_number

#: Below this class agreement with the float model, an export gets a warning.
AGREEMENT_WARN = 0.97


class ExportRejected(Exception):
    """The check on write missed a bar the caller set; nothing was written."""


def gate_failures(report: dict, min_agreement: float | None, max_rmse_change: float | None) -> list[str]:
    """Why ``report`` (a ``verification`` dict) misses the bars, as short reasons.

    ``min_agreement`` is a fraction (0..1); ``max_rmse_change`` a percentage.
    """
    if min_agreement is None and max_rmse_change is None:
        return []
    broken = []
    if report.get("reference_diverged"):
        broken.append("the float reference itself diverges (NaN/inf) on the held-out data, so nothing was measured")
    elif not finite_number(report.get("max_abs_err")):
        broken.append(f"the export's error is not finite ({report.get('max_abs_err')})")
    if report.get("synthetic_data"):
        broken.append("the check on write had only synthetic inputs, which cannot vouch for real data "
                      "(give --calibration-data with real sequences)")
    if min_agreement is not None:
        agreement = report.get("agreement")
        if agreement is None:
            broken.append("no class agreement was measured")
        elif not (finite_number(agreement) and agreement >= min_agreement):
            broken.append(f"class agreement {100 * agreement:.2f}% is below --min-agreement {min_agreement:g}")
    if max_rmse_change is not None:
        change = report.get("rmse_change")
        if change is None:
            broken.append("no RMSE change was measured: the held-out data has no targets "
                          "(give --calibration-data as .npz with x and y)")
        elif not (finite_number(change) and 100 * change <= max_rmse_change):
            broken.append(f"RMSE change {100 * change:+.2f}% exceeds --max-rmse-change {max_rmse_change:g}%")
    return broken


def quality_warnings(report: dict, quantize: str) -> list[str]:
    """Warnings for a check on write that passed no gate but should not go unnoticed."""
    if report.get("reference_diverged"):
        return ["the float reference itself diverges (NaN/inf) on the held-out data, so this export could not "
                "be checked: the model's state grows without bound on such input (an unbounded activation "
                "such as relu?)"]
    if not finite_number(report.get("max_abs_err")):
        return [f"the export's error is not finite (it gives NaN/inf where the float reference does not): "
                f"the {quantize} file is not usable" + ("; try int16x8 or float32" if quantize != "float32" else "")]
    agreement = report.get("agreement")
    if agreement is not None and agreement < AGREEMENT_WARN:
        better = "int16x8 (int16 activations and state)" if quantize != "int16x8" else "float32 or dynamic"
        return [f"class agreement with the float model is only {100 * agreement:.1f}% with {quantize}; "
                f"{better} keeps far more precision"]
    return []
