"""How to train an adapter: TrainConfig and the named losses, with their help and bounds.

A light module (no torch), so that the CLI and the dashboard can read the settings' help,
labels and bounds without loading the training stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim_core.base.options import MAX_SEED, Choice, check, registry, setting

DEVICE_HELP = ("where training runs: auto (the first GPU when there is one, else the CPU), "
               "cpu or cuda; one process uses one GPU (another one: CUDA_VISIBLE_DEVICES=N; "
               "every GPU: accelerate launch); the held-out scoring and validation run there "
               "too")

LOSSES = registry(
    Choice("kl", "Population fit (KL)",
           "forward KL(real || model) between each group's real answer shares and the model's "
           "letter distribution (SubPOP)"),
    Choice("kl+ordinal", "Population fit + ordinal distance",
           "KL plus a penalty for answers far from the real ones on the ordinal scale "
           "(energy distance; Namikoshi et al.)"),
    Choice("kl+ce", "Population fit + individual answers",
           "KL on group shares plus cross-entropy on individual respondents' answers "
           "(respondent-level surveys only; needs slice attributes)"),
)

SPREADS = registry(
    Choice("variance", "Variance across groups",
           "variance of the per-group mean KL within the batch (in nats squared)"),
    Choice("max-mean", "Worst group minus the mean",
           "largest per-group mean KL minus the mean over the batch's groups (in nats)"),
)


DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                          "down_proj")


@dataclass
class TrainConfig:
    """How to train. Defaults suit the embedded 135M model on a 2-core CPU and were chosen on
    the validation questions of the GSS question split (docs/fidelity.md): unshuffled options
    beat shuffled (val WD 0.204 vs 0.226), and validating every 50 steps keeps the best
    weights (held-out questions overfit after ~100 steps). Every field's help and bounds live
    in its `setting(...)`; `lora_alpha` resolves the alpha default (2 x rank).
    """

    rank: int = setting(16, min=1, max=512, label="Adapter size (LoRA rank)",
                        help="rank of the LoRA matrices: larger learns more, trains slower")
    alpha: int | None = setting(None, min=1, max=4096, label="LoRA alpha",
                                none="2 x rank (the scaling the defaults were chosen with)",
                                help="scaling of the adapter's update (alpha / rank)")
    dropout: float = setting(0.05, min=0, max=0.9, label="LoRA dropout",
                             help="dropout on the adapter's input during training")
    target_modules: tuple[str, ...] = setting(
        default=DEFAULT_TARGET_MODULES, cli=False, label="Adapted layers",
        help="projections that get an adapter (attention and MLP)")
    top_layers: int | None = setting(None, min=1, max=1000, label="Top layers only",
                                     none="every transformer layer",
                                     help="adapt only the top N transformer layers: cheaper "
                                          "steps (the backward pass stops there)")
    lr: float = setting(1e-3, above=0, max=1, label="Learning rate",
                        help="AdamW learning rate, decayed linearly to 0 after the warm-up")
    epochs: float = setting(1.0, above=0, max=1000, label="Passes over the data (epochs)",
                            help="how many times every training row is seen")
    max_steps: int | None = setting(None, min=1, label="Maximum steps",
                                    none="as many as the epochs need",
                                    help="stop after this many steps (caps the epochs)")
    batch_size: int = setting(8, min=1, max=1024, label="Rows per step (batch size)",
                              help="survey rows per training step (per device); one step of "
                                   "8 rows takes about 4 s for the 135M model on 2 cores")
    warmup_steps: int = setting(10, min=0, label="Warm-up steps",
                                help="steps over which the learning rate rises from 0")
    weight_decay: float = setting(0.0, min=0, max=1, label="Weight decay",
                                  help="AdamW weight decay")
    loss: str = setting("kl", choices=LOSSES, label="Loss", help="what training minimises")
    ordinal_lambda: float = setting(1.0, min=0, max=100, label="Ordinal penalty weight",
                                    help="weight of the ordinal distance (loss kl+ordinal)")
    ce_lambda: float = setting(1.0, min=0, max=100, label="Individual answers weight",
                               help="weight of the respondents' cross-entropy (loss kl+ce)")
    shuffle_options: bool = setting(False, flag="shuffle", label="Shuffle option order",
                                    help="a fresh random option order per row and epoch, "
                                         "against letter bias; off by default: the original "
                                         "order carries information the adapter learns (it "
                                         "is then read in that order only)")
    reweight: bool = setting(False, label="Equal weight per group",
                             help="every group gets the same total weight, so small groups "
                                  "count (Lin 2024)")
    # 0 is the validated choice: bench/individual.py tried 0 / 2 / 10 and the spread fell
    # only slightly while the mean gap rose 4-9 % on validation (docs/fidelity.md)
    fairness_lambda: float = setting(
        0.0, min=0, max=100, label="Fairness weight",
        help="weight of a penalty on how unequal the fit is across groups: the spread of "
             "the per-group KL within each batch (Lin 2024's multi-objective loss; 0: off). "
             "Groups are slice labels; respondent rows (kl+ce) are left out of the term")
    fairness_spread: str = setting("variance", choices=SPREADS, label="Fairness spread",
                                   help="how the spread across groups is measured")
    balance_floor: float = setting(
        0.0, min=0, max=1, label="Oversample small groups up to",
        help="repeat the rows of small groups until every group has at least this share "
             "of the mean rows per group (0: off; 1: none below the mean). Copies, not "
             "synthetic rows: SMOTE-style interpolation between respondents is not "
             "meaningful for text prompts")
    qlora: bool = setting(False, label="QLoRA (4-bit base, CUDA only)",
                          help="load the base model in 4-bit NF4 (bitsandbytes; CUDA GPU "
                               "only)")
    seed: int = setting(0, min=0, max=MAX_SEED, label="Seed",
                        help="seeds the split, order and weights")
    eval_every: int | None = setting(50, min=1, label="Validate every N steps",
                                     none="at the end of each epoch",
                                     help="how often the validation rows are scored; the "
                                          "best validated weights are the ones saved")
    patience: int = setting(2, min=0, label="Patience (validations)",
                            help="validations without improvement before stopping early "
                                 "(0: never stop early)")
    save_every: int = setting(50, min=1, label="Checkpoint every N steps",
                              help="training checkpoints, to resume after an interruption")
    evaluate_test: bool = setting(True, flag="score-test", label="Score the held-out rows",
                                  help="score base and adapter on the held-out rows before "
                                       "and after training (shown in the adapter card)")
    eval_orders: int | None = setting(None, min=1, max=26, label="Option orders when scoring",
                                      none="each checkpoint's own, as the simulator reads it",
                                      help="option orders averaged in the held-out scoring")
    dtype: str = setting("auto", choices=("auto", "float32", "bfloat16", "float16"),
                         label="Weights dtype",
                         help="precision of the base model while training; auto: float32 on "
                              "the CPU (the defaults were chosen so), bfloat16 with mixed "
                              "precision on a GPU")
    device: str = setting("auto", label="Device", help=DEVICE_HELP)

    def __post_init__(self) -> None:
        self.target_modules = tuple(self.target_modules)
        check(self)

    @property
    def lora_alpha(self) -> int:
        """The LoRA alpha used: `alpha`, or 2 x rank when it is None."""
        return self.alpha if self.alpha is not None else 2 * self.rank
