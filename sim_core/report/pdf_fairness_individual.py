"""PDF sections of the fairness view and the individual-level evaluation
(sim_core.report.fairness_individual), with the building blocks of sim_core.report.pdf_kit."""

from __future__ import annotations

import math
import textwrap

from matplotlib.figure import Figure

from sim_core.base.labels import is_baseline
from sim_core.report import palette
from sim_core.report.fairness_individual import FairnessPart, IndividualPart
from sim_core.report.pdf_kit import (
    add_heading,
    add_image,
    add_paragraph,
    add_table,
    figure_png,
    format_score,
    plain_rows,
)

GROUP_ROWS = 40            # groups listed per fairness table


def _value(value) -> str:
    """A table cell: scores formatted, flags as yes/no, text as is."""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, (int, float)) or value is None:
        return format_score(value)
    return str(value)


def fairness_png(part: FairnessPart) -> tuple[bytes, float]:
    """Gap per group against effective n (log x), the noise-floor curve, grown groups ringed."""
    fig = Figure(figsize=(7.5, 3.4))
    ax = fig.subplots()
    records = [g for g in part.groups.records() if g.get("n_eff")]
    attributes = list(dict.fromkeys(g["attribute"] for g in records))
    for i, attribute in enumerate(attributes):
        mine = [g for g in records if g["attribute"] == attribute]
        ax.scatter([g["n_eff"] for g in mine], [g["gap"] for g in mine], s=18,
                   color=palette.checkpoint_color(i), label=textwrap.shorten(attribute, 24))
    grown = [g for g in records if g.get("grew")]
    if grown:
        ax.scatter([g["n_eff"] for g in grown], [g["gap"] for g in grown], s=90,
                   facecolors="none", edgecolors="#D55E00", linewidths=1.2, label="gap grew")
    curve = [(n, f) for n, f in part.curve if n and f is not None and math.isfinite(f)]
    if curve:
        ax.plot(*zip(*curve), linestyle=":", color=palette.REAL_COLOR, label="noise floor")
    ax.set_xscale("log")
    ax.set_xlabel("effective n of the group", fontsize=8)
    ax.set_ylabel(f"gap ({part.score})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, ncol=3, frameon=False)
    fig.tight_layout()
    return figure_png(fig)


def fairness_section(pdf, parts: list[FairnessPart]) -> None:
    """One block per checkpoint: spread, chart (when sizes are known) and group table."""
    for part in parts:
        spread = part.spread
        add_heading(pdf, f"Fairness: gap per group against group size — {part.entry}", 11)
        add_paragraph(pdf, f"Score {part.score}. Mean gap {format_score(spread.get('mean_gap'))}, "
              f"standard deviation across groups {format_score(spread.get('sd'))}, range "
              f"{format_score(spread.get('range'))} over {spread.get('groups')} groups."
              + (f" Compared with {part.compared_with}: 'grew' marks a larger gap."
                 if part.compared_with else ""), 8.5)
        if any(g.get("n_eff") for g in part.groups.records()):
            add_image(pdf, fairness_png(part))
        else:
            add_paragraph(pdf, "The survey gives no group sizes: gaps are listed without n.",
                          8, "I")
        keep = [c for c in ("group", "n_eff", "gap", "floor", "before", "change", "grew",
                            "beyond_noise") if c in part.groups.columns]
        rows = [[_value(g[c]) for c in keep] for g in part.groups.records()[:GROUP_ROWS]]
        add_table(pdf, keep, plain_rows(rows), [3] + [1] * (len(keep) - 1), size=7)


def tradeoff_png(part: IndividualPart, x: str) -> tuple[bytes, float]:
    """Population KL against the individual score: one line per checkpoint through its
    temperatures on the test respondents, chosen temperature starred, baselines as points."""
    fig = Figure(figsize=(7.5, 3.8))
    ax = fig.subplots()
    entries = list(part.sweeps) + [r["entry"] for r in part.summary.records()
                                   if is_baseline(r["entry"])]
    colors = palette.entry_colors(entries)
    for label, sweep in part.sweeps.items():
        points = [r for r in sweep["curve"].records() if r["part"] == "test"
                  and r[x] is not None and r["kl"] is not None]
        ax.plot([r[x] for r in points], [r["kl"] for r in points], marker="o", markersize=3,
                color=colors[label], label=textwrap.shorten(label, 40))
        for r in points:
            ax.annotate(f"{r['temperature']:g}", (r[x], r["kl"]), fontsize=6,
                        textcoords="offset points", xytext=(2, 3))
            if r["temperature"] == sweep["chosen"]:
                ax.scatter([r[x]], [r["kl"]], marker="*", s=140, color=colors[label])
    for r in part.summary.records():
        if is_baseline(r["entry"]) and r[x] is not None and r["kl"] is not None:
            ax.scatter([r[x]], [r["kl"]], color=colors[r["entry"]], s=25)
            ax.annotate(r["entry"].split(": ")[-1], (r[x], r["kl"]), fontsize=6,
                        textcoords="offset points", xytext=(3, -8))
    ax.set_xlabel(f"individual {x} (lower is better)", fontsize=8)
    ax.set_ylabel("population KL (lower is better)", fontsize=8)
    ax.set_yscale("symlog", linthresh=0.05)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return figure_png(fig)


def individual_section(pdf, part: IndividualPart) -> None:
    """Summary on held-out respondents, the KL/RMSE trade-off chart and every sweep."""
    pdf.add_page()
    add_heading(pdf, "Individual level: held-out respondents")
    add_paragraph(pdf, f"{part.n_scored.get('test')} test and {part.n_scored.get('val')} "
                  f"validation answers of {len(part.questions)} question(s) "
                  f"({', '.join(part.questions)}); profiles on {', '.join(part.attributes)}, "
                  f"{part.n_profiles} distinct prompts; mode {part.mode}; temperature chosen "
                  f"on the validation respondents by {part.criterion}.", 9)
    for note in part.notes:
        add_paragraph(pdf, f"Note: {note}", 8, "I")
    keys = [s["key"] for s in part.scores]
    arrows = {s["key"]: "↓" if s["direction"] == "lower" else "↑" for s in part.scores}
    rows = [[r["entry"], "" if r["temperature"] is None else
             f"{r['temperature']:g}{' ★' if r['chosen'] else ''}"]
            + [format_score(r[k]) for k in keys] for r in part.summary.records()]
    add_table(pdf, ["Entry", "T"] + [f"{k} {arrows[k]}" for k in keys], plain_rows(rows),
           [4, 1] + [1.4] * len(keys), size=7)
    has_rmse = any(r.get("rmse") is not None for r in part.summary.records())
    add_image(pdf, tradeoff_png(part, "rmse" if has_rmse else "log_loss"))
    for label, sweep in part.sweeps.items():
        add_heading(pdf, f"Temperature sweep: {label} (★ chosen on validation)", 10)
        rows = [[f"{r['temperature']:g}{' ★' if r['temperature'] == sweep['chosen'] else ''}",
                 r["part"]] + [format_score(r[k]) for k in keys]
                for r in sweep["curve"].records()]
        add_table(pdf, ["T", "part"] + keys, plain_rows(rows), [1, 1] + [1.4] * len(keys),
               size=7)
