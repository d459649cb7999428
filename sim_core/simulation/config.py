"""Simulation settings: how a distribution is read from a model (mode), option orders,
sampling, device, cache and calibration; every field documents itself (label, help, bounds)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim_core.base.options import MAX_SEED, Choice, check, registry, setting
from sim_core.simulation.devices import CPU_BATCH, DEVICES_HELP, GPU_BATCH_CAP, check_device_name
from sim_core.simulation.prompts import PromptStyle

# Measured on 100 random real GSS rows with the embedded model (float32): mean ordinal WD
# 0.268 with 1 order, 0.201 with 2, 0.199 with 4 (uniform guess 0.200): the reversed order
# removes nearly all the letter bias at half the cost of 4 orders.
# An adapter trained on the original option order learned what the position says (scales run
# low to high, the middle is often the mode): on the GSS validation questions it scored WD
# 0.204 with its own order and 0.242 averaged over 2 orders, so such an adapter's card
# recommends 1 order (finetune writes `inference_orders`; docs/fidelity.md).
DEFAULT_ORDERS = 2
DEFAULT_TEMPERATURE = 1.0   # sampling temperature without a setting or a chosen one
MAX_NEW_TOKENS = 6          # a sampled answer's length: a letter and a little more



def verbalized_tokens(k: int) -> int:
    """The most tokens a verbalized reply may take: a line like "A: 45%" per option, with room
    for a short lead-in."""
    return 8 * k + 24


MODES = registry(
    Choice("first-token", "First-token probabilities",
           "the next-token probabilities of the option letters (SubPOP's method: one "
           "forward pass per prompt)"),
    Choice("sample", "Sampling (synthetic respondents)",
           "generate answers from N synthetic respondents per slice and count them (costs "
           "about 20x more per distribution)"),
    Choice("verbalized", "Verbalized distribution",
           "ask the model what percentage of people like the persona would choose each "
           "option (one reply per slice; can match surveys better for instruction-tuned and "
           "frontier models, whose letter probabilities are over-confident)"),
)


@dataclass
class SimConfig:
    """Simulation settings; every field's help and bounds live in its `setting(...)`.

    `style` (persona templates and wording) is the only field without a CLI flag.
    """

    mode: str = setting("first-token", choices=MODES, label="Mode",
                        help="how the answer distribution is read from the model")
    orders: int | None = setting(
        None, min=1, max=26, label="Option orders averaged",
        none=f"each checkpoint's own: {DEFAULT_ORDERS} for a base model, 1 for an adapter "
             "trained on the original option order",
        help="option orders averaged against letter bias (original, reversed, cyclic "
             "shifts; first-token mode, and verbalized mode when set)")
    samples: int = setting(20, min=1, max=1000, label="Samples per slice",
                           help="synthetic respondents generated per slice (sampling mode)")
    temperature: float | None = setting(
        None, above=0, max=10, label="Sampling temperature",
        none=f"each checkpoint's own: the temperature its individual-level sweep chose in "
             f"sampling mode (adapter card), else {DEFAULT_TEMPERATURE:g}",
        help="temperature of the sampled answers (sampling mode)")
    batch_size: int | None = setting(
        None, min=1, max=1024, label="Batch size", help="prompts per forward pass",
        none=f"suited to the device: {CPU_BATCH} on the CPU, as many as half the GPU's free "
             f"memory holds on a GPU (up to {GPU_BATCH_CAP})")
    device: str = setting("auto", label="Device", help=f"where the model runs: {DEVICES_HELP}")
    seed: int = setting(0, min=0, max=MAX_SEED, label="Seed",
                        help="sampling seed, combined with each prompt so results do not "
                             "depend on the order prompts run in")
    style: PromptStyle = field(default_factory=PromptStyle)
    use_cache: bool = setting(True, flag="cache", label="Use the result cache",
                              help="read and write the on-disk result cache")
    calibrate: bool = setting(True, label="Calibrate",
                              help="apply the checkpoint's calibration (temperature and "
                                   "shrinkage fitted on validation rows it was never tested "
                                   "on) when it has one; first-token mode")
    max_requests: int | None = setting(
        None, min=1, label="Most requests", none="no limit",
        help="refuse a run that would send more requests than this to a server (counted "
             "before anything is sent; answers already in the cache cost nothing)")
    interval_level: float = setting(0.9, min=0.5, max=0.99, label="Prediction interval level",
                                    help="nominal coverage of the prediction interval drawn "
                                         "around each simulated share (split conformal on "
                                         "the checkpoint's validation residuals)")

    def __post_init__(self) -> None:
        check(self)
        check_device_name(self.device)
