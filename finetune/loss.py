"""Batches of survey rows (prompts + letter-space targets) and the training losses.

Prompts come from sim_core.simulation.prompts.build_prompt and letter log-probabilities from
sim_core.simulation.simulate.letter_logits, the same functions the simulator uses, so that training
and simulation never drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from finetune.rows import permute_target, shuffle_order
from sim_core.evaluation.splits import row_key
from sim_core.simulation.prompts import PromptStyle, build_prompt
from sim_core.survey.marginal import slice_label
from sim_core.survey.slices import SurveyRow


def normalised_ordinal(values: Sequence[float] | None, k: int) -> np.ndarray:
    """Ordinal values scaled to [0, 1] over the finite ones; nan for nominal or unscored."""
    if values is None:
        return np.full(k, np.nan)
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    if finite.size < 2 or finite.max() == finite.min():
        return np.full(k, np.nan)
    return (v - finite.min()) / (finite.max() - finite.min())


def is_individual(row: SurveyRow) -> bool:
    """A respondent-level row (finetune.rows.respondent_rows): n_eff 1, one-hot target."""
    return row.n_eff == 1.0 and int(np.count_nonzero(row.dist)) == 1


@dataclass
class RowCollator:
    """Turns row indices into a batch: prompts and letter-space targets.

    With `shuffle` each row gets a random option order per epoch (seeded by seed, epoch and
    row key); the target, ordinal values and everything else are permuted the same way.
    `epoch` is set by the training callback at the start of each epoch. Each batch also
    carries the group (slice label) index of its rows for the fairness term (-1 for
    respondent rows).
    """

    rows: list[SurveyRow]
    tokenizer: Any
    shuffle: bool = True
    seed: int = 0
    style: PromptStyle | None = None
    epoch: int = 0

    def __post_init__(self) -> None:
        labels = dict.fromkeys(slice_label(r.slice) for r in self.rows if not is_individual(r))
        self.group_ids = {label: i for i, label in enumerate(labels)}

    def group_of(self, row: SurveyRow) -> int:
        """Index of the row's group, -1 for a respondent row (not in the fairness term)."""
        return -1 if is_individual(row) else self.group_ids.get(slice_label(row.slice), -1)

    def order_for(self, row: SurveyRow) -> tuple[int, ...]:
        """Shown option order of one row in the current epoch."""
        k = len(row.question.options)
        if not self.shuffle:
            return tuple(range(k))
        return shuffle_order(k, self.seed, self.epoch, row_key(row))

    def __call__(self, features: list[dict]) -> dict:
        rows = [self.rows[int(f["index"])] for f in features]
        kmax = max(len(r.question.options) for r in rows)
        target = torch.zeros(len(rows), kmax)
        mask = torch.zeros(len(rows), kmax, dtype=torch.bool)
        ordinal = torch.full((len(rows), kmax), math.nan)
        prompts = []
        for i, row in enumerate(rows):
            order = self.order_for(row)
            k = len(order)
            prompts.append(build_prompt(self.tokenizer, row.question, row.slice,
                                        order=order, style=self.style))
            target[i, :k] = torch.from_numpy(permute_target(row.dist, order))
            mask[i, :k] = True
            ordinal[i, :k] = torch.from_numpy(
                normalised_ordinal(row.question.ordinal_values, k)[list(order)])
        return {"prompts": prompts, "target": target, "mask": mask, "ordinal": ordinal,
                "weight": torch.tensor([float(r.weight) for r in rows]),
                "individual": torch.tensor([is_individual(r) for r in rows]),
                "group": torch.tensor([self.group_of(r) for r in rows], dtype=torch.long)}


def masked_log_probs(letter_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Renormalise (batch, kmax) letter log-probs over each row's own k letters.

    Exact: renormalising the first k of kmax letters equals asking letter_logits for k.
    Padded letters get log-prob 0 (and no gradient) so that 0 * logq stays finite.
    """
    logq = torch.log_softmax(letter_logp.masked_fill(~mask, -math.inf), dim=-1)
    return logq.masked_fill(~mask, 0.0)


def kl_per_row(target: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Forward KL(real || model) per row, in nats: sum p (ln p - ln q), 0 ln 0 = 0."""
    logp = torch.log(target.clamp_min(1e-12))
    return torch.where(target > 0, target * (logp - logq), torch.zeros_like(target)).sum(-1)


def energy_distance(target: torch.Tensor, q: torch.Tensor, ordinal: torch.Tensor) -> torch.Tensor:
    """Ordinal penalty per row: 2 E|A-B| - E|A-A'| - E|B-B'| on the [0, 1] ordinal scale.

    A, A' ~ model distribution q and B, B' ~ real distribution p, restricted to options with
    a finite ordinal value (both renormalised over them). E|A-B| is the expected distance
    between a simulated and a real answer: mass far from where real answers are costs more.
    Subtracting the within-distribution spreads makes the penalty 0 exactly when q == p
    (it equals 2 * integral (F_q - F_p)^2 dv, the 1-D energy distance). Nominal rows: 0.
    """
    finite = torch.isfinite(ordinal)
    v = torch.nan_to_num(ordinal, nan=0.0)
    dist = (v.unsqueeze(-1) - v.unsqueeze(-2)).abs()             # (b, k, k)
    p = target * finite
    qq = q * finite
    p_sum, q_sum = p.sum(-1, keepdim=True), qq.sum(-1, keepdim=True)
    usable = (finite.sum(-1) >= 2) & (p_sum.squeeze(-1) > 0) & (q_sum.squeeze(-1) > 0)
    p = p / p_sum.clamp_min(1e-12)
    qq = qq / q_sum.clamp_min(1e-12)

    def cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bi,bij,bj->b", a, dist, b)

    energy = 2 * cross(qq, p) - cross(qq, qq) - cross(p, p)
    return torch.where(usable, energy, torch.zeros_like(energy))


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum w x / sum w (0 when no weight)."""
    total = weights.sum()
    return (values * weights).sum() / total if total > 0 else values.sum() * 0.0


def group_spread(per_row: torch.Tensor, weight: torch.Tensor, group: torch.Tensor,
                 how: str = "variance") -> torch.Tensor:
    """Spread across groups of the per-group weighted mean KL in one batch.

    Args:
        per_row: (batch,) KL per row; weight: (batch,) row weights.
        group: (batch,) group index, -1 for rows outside the term.
        how: "variance" (population variance of the group means) or "max-mean" (the worst
            group's mean minus the mean of the group means).
    Returns:
        Scalar tensor; 0 when fewer than two groups with weight are in the batch.
    """
    valid = (group >= 0) & (weight > 0)
    if int(valid.sum()) == 0:
        return per_row.sum() * 0.0
    ids, inverse = torch.unique(group[valid], return_inverse=True)
    if ids.numel() < 2:
        return per_row.sum() * 0.0
    w, values = weight[valid], per_row[valid]
    sums = torch.zeros(ids.numel(), dtype=values.dtype, device=values.device)
    totals = torch.zeros_like(sums)
    means = sums.index_add(0, inverse, values * w) / totals.index_add(0, inverse, w)
    if how == "max-mean":
        return means.max() - means.mean()
    return ((means - means.mean()) ** 2).mean()


def batch_loss(letter_logp: torch.Tensor, batch: dict, loss: str = "kl",
               ordinal_lambda: float = 1.0, ce_lambda: float = 1.0,
               fairness_lambda: float = 0.0, fairness_spread: str = "variance"
               ) -> torch.Tensor:
    """The training loss of one batch.

    Args:
        letter_logp: (batch, kmax) letter log-probs from sim_core.simulation.simulate.letter_logits.
        batch: a RowCollator batch (target, mask, ordinal, weight, individual).
        loss: "kl" (weighted mean forward KL), "kl+ordinal" (plus ordinal_lambda x energy
            distance, see energy_distance) or "kl+ce" (KL on aggregate rows plus ce_lambda x
            cross-entropy on individual respondents' answers).
        ordinal_lambda: weight of the ordinal penalty.
        ce_lambda: weight of the respondent cross-entropy.
        fairness_lambda: weight of group_spread() of the per-row KL (aggregate rows; needs
            batch["group"]); 0 leaves the loss as it was.
        fairness_spread: "variance" or "max-mean" (group_spread).
    Returns:
        Scalar tensor.
    """
    target, weight = batch["target"], batch["weight"].to(letter_logp.dtype)
    target = target.to(letter_logp.dtype)
    logq = masked_log_probs(letter_logp, batch["mask"])
    per_row = kl_per_row(target, logq)
    if loss == "kl+ce":
        individual = batch["individual"].to(letter_logp.device)
        aggregate = _weighted_mean(per_row, weight * (~individual))
        # KL against a one-hot target is exactly the cross-entropy of that answer.
        total = aggregate + ce_lambda * _weighted_mean(per_row, weight * individual)
    else:
        total = _weighted_mean(per_row, weight)
    if loss == "kl+ordinal":
        penalty = energy_distance(target, logq.exp() * batch["mask"],
                                  batch["ordinal"].to(letter_logp.device, letter_logp.dtype))
        total = total + ordinal_lambda * _weighted_mean(penalty, weight)
    if fairness_lambda > 0:
        total = total + fairness_lambda * group_spread(
            per_row, weight, batch["group"].to(letter_logp.device), fairness_spread)
    return total
