"""An adapter's card (card.json beside its peft weights): what it was trained on, how it was
split and scored, its calibration and the settings it tells the simulator; and the check
that an adapter belongs to the base model it is put on.

finetune writes the card; the simulator, pages, reports and the CLI read its fields; keys it
does not know are kept in `extra` and written back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from sim_core.base.errors import AdapterError, SimError
from sim_core.base.reading import folder_fingerprint
from sim_core.base.writing import atomic_write
from sim_core.simulation.calibration import Calibration

CARD_FILE = "card.json"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class AdapterCard:
    """What an adapter is: its base model, the data and split it was trained on, how, and
    its scores on the held-out rows before and after training.

    Attributes:
        name: registry name; created/date: when it was saved / trained (ISO 8601, UTC).
        base_model: the name given to load_model; base_label: its display name;
            base_fingerprint: LoadedModel.fingerprint of the base (checked at load time).
        data: survey name, file, fingerprint, slice attributes, questions chosen.
        questions_seen, slices_seen: what training and validation rows covered.
        split: how the rows were split (finetune.rows.split_rows' info: held-out units).
        loss, hyperparameters: the TrainConfig used (hyperparameters has every field).
        prompt_style: the persona templates and wording used in training.
        inference_orders: option orders the simulator should average (1 when trained on the
            original option order; None: the simulator's default).
        before, after: mean held-out scores of the base model and of the adapter (raw).
        before_calibrated, after_calibrated: the same with each one's calibration applied.
        baselines: baseline name -> mean held-out scores.
        calibration: the adapter's calibration
            (sim_core.evaluation.calibration_fit.Calibration.to_dict), fitted on the split's
            validation rows; None when none was fitted.
        heldout: the held-out measurement behind its verdict
            (sim_core.evaluation.verdict.HeldOut.to_dict); None when the test rows were not scored.
        test_rows, steps, best_val_step, val_history, train_seconds: training facts
            (train_seconds: the whole job, loading and scoring included).
        step_seconds: mean wall time per training step (validation included), measured
            on that run; the Fine-tune form estimates durations from it.
        device, processes: where it trained ("cpu", "cuda:0", "2 processes on cuda") and how
            many training processes shared the work.
        fairness: per-group gap against group size on the held-out rows, before and after
            training, the spread across groups and the groups whose gap grew
            (finetune.train; sim_core.evaluation.fairness).
        temperature_sweep: the individual-level KL/RMSE temperature curve, the temperature
            chosen and on which respondents it was chosen
            (sim_core.evaluation.individual.sweep_record).
        extra: keys of a card this version does not know (kept as they are).
        error: why the card could not be read ("" when fine).
    """

    name: str = ""
    created: str | None = None
    date: str | None = None
    base_model: str | None = None
    base_label: str | None = None
    base_fingerprint: str | None = None
    data: dict = field(default_factory=dict)
    questions_seen: list = field(default_factory=list)
    slices_seen: list = field(default_factory=list)
    split: dict = field(default_factory=dict)
    loss: str | None = None
    hyperparameters: dict = field(default_factory=dict)
    prompt_style: dict | None = None
    inference_orders: int | None = None
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    before_calibrated: dict = field(default_factory=dict)
    after_calibrated: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    calibration: dict | None = None
    heldout: dict | None = None
    test_rows: int | None = None
    steps: int | None = None
    best_val_step: int | None = None
    val_history: list = field(default_factory=list)
    train_seconds: float | None = None
    step_seconds: float | None = None
    device: str | None = None
    processes: int | None = None
    fairness: dict | None = None
    temperature_sweep: dict | None = None
    extra: dict = field(default_factory=dict)
    error: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> AdapterCard:
        """A card from card.json's object (unknown keys go to `extra`)."""
        known = {f.name for f in fields(cls)} - {"extra", "error"}
        card = cls(**{k: v for k, v in data.items() if k in known and v is not None})
        card.extra = {k: v for k, v in data.items() if k not in known}
        return card

    def to_dict(self) -> dict:
        """The card as card.json holds it (extra keys merged back, empty error left out)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("extra", "error")}
        return {**out, **self.extra, **({"error": self.error} if self.error else {})}

    @property
    def orders(self) -> int | None:
        """inference_orders when it is a usable number of option orders, else None."""
        value = self.inference_orders
        return int(value) if isinstance(value, (int, float)) and value >= 1 else None

    @property
    def sampling_temperature(self) -> float | None:
        """The temperature the individual-level sweep chose in sampling mode (later sampling
        simulations use it unless told otherwise), else None."""
        sweep = self.temperature_sweep if isinstance(self.temperature_sweep, dict) else {}
        chosen = sweep.get("chosen")
        if sweep.get("mode") != "sample" or not isinstance(chosen, (int, float)):
            return None
        return float(chosen) if chosen > 0 else None


def read_card(path: Path) -> AdapterCard:
    """The adapter's card.json (an empty card when there is none)."""
    card_path = Path(path) / CARD_FILE
    if not card_path.exists():
        return AdapterCard(name=Path(path).name)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AdapterError(
            f"The card of adapter '{Path(path).name}' is unreadable: {error}") from error
    if not isinstance(card, dict):
        raise AdapterError(f"The card of adapter '{Path(path).name}' is not a JSON object.")
    try:
        return AdapterCard.from_dict(card)
    except TypeError as error:
        raise AdapterError(
            f"The card of adapter '{Path(path).name}' is malformed: {error}") from error


def write_card(folder: Path, card: AdapterCard) -> None:
    """Write card.json (UTF-8, indented) atomically."""
    atomic_write(folder / CARD_FILE,
                 json.dumps(card.to_dict(), indent=2, default=str, ensure_ascii=False))


def adapter_base(path: Path) -> tuple[str | None, str | None]:
    """(base model name, base fingerprint) from the card, else from adapter_config.json."""
    card = read_card(path)
    base = card.base_model
    if not base:
        try:
            config = json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise AdapterError(f"Adapter '{Path(path).name}': unreadable {ADAPTER_CONFIG} "
                               f"({error}).") from error
        base = config.get("base_model_name_or_path")
    return base, card.base_fingerprint


def simulator_settings(path: Path) -> dict:
    """What an adapter's card tells the simulator: inference_orders, prompt_style,
    calibration, sampling_temperature (a ModelHandle's attributes). An unreadable card or
    calibration gives the simulator's defaults (None), uncalibrated."""
    settings = {"inference_orders": None, "prompt_style": None, "calibration": None,
                "sampling_temperature": None}
    try:
        card = read_card(path)
        settings.update(inference_orders=card.orders, prompt_style=card.prompt_style,
                        sampling_temperature=card.sampling_temperature,
                        calibration=Calibration.from_dict(card.calibration)
                        if card.calibration else None)
    except SimError:
        settings.update(inference_orders=None, calibration=None)
    return settings


def check_base(path: Path, name: str, fingerprint: str, label: str, loaded_from: str = ""
               ) -> None:
    """Refuse an adapter trained on another base model than the one given (AdapterError).

    Args:
        path: the adapter's folder.
        name, fingerprint, label: the loaded base model's name, fingerprint and display name.
        loaded_from: the folder its weights were read from (peft records such paths).
    """
    base, trained_on = adapter_base(path)
    if trained_on:
        if trained_on != fingerprint:
            raise AdapterError(f"Adapter '{Path(path).name}' was trained on base model "
                               f"'{base or trained_on}' (fingerprint {trained_on}), not on "
                               f"'{label}' (fingerprint {fingerprint}).")
        return
    if base and not _same_base(str(base), name, fingerprint, loaded_from):
        raise AdapterError(f"Adapter '{Path(path).name}' was trained on base model '{base}', "
                           f"not on '{name}'.")


def _same_base(base: str, name: str, fingerprint: str, loaded_from: str) -> bool:
    """Whether a base model name/path recorded by peft refers to the loaded base model."""
    names = {name, loaded_from, Path(name).name, Path(loaded_from).name}
    if base in names or Path(base).name in names:
        return True
    if Path(base).is_dir():
        return folder_fingerprint(Path(base)) == fingerprint
    return False
