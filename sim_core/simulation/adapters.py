"""The adapter registry: LoRA adapters (peft format) with a JSON card, in workspace/adapters.

The card (card.json) is an AdapterCard: finetune writes it, the simulator, pages, reports
and the CLI read its fields; keys it does not know are kept in `extra` and written back.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sim_core.base.errors import AdapterError, SimError
from sim_core.base.reading import folder_fingerprint
from sim_core.base.workspace import check_name, is_valid_name, subdir
from sim_core.base.writing import (
    atomic_file,
    atomic_write,
    failure_message,
    is_storage_failure,
    remove_folder,
    staged_folder,
)
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
        calibration: the adapter's calibration (sim_core.evaluation.calibration_fit.Calibration.to_dict),
            fitted on the split's validation rows; None when none was fitted.
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
            chosen and on which respondents it was chosen (sim_core.evaluation.individual.sweep_record).
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
    def from_dict(cls, data: dict) -> "AdapterCard":
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


@dataclass
class AdapterInfo:
    """One registered adapter."""

    name: str
    path: Path
    card: AdapterCard


def adapters_dir() -> Path:
    """workspace/adapters, created on demand."""
    return subdir("adapters")


def _registry_name(name: str) -> str:
    """The name as given when it can be stored as it is (check_name), else AdapterError."""
    try:
        return check_name(name, "adapter name")
    except SimError as error:
        raise AdapterError(str(error)) from error


def list_adapters() -> list[AdapterInfo]:
    """Complete adapters in the registry (temporary and hidden folders skipped), by name."""
    found = []
    for path in sorted(adapters_dir().iterdir()):
        if path.is_dir() and not path.name.startswith(".") and (path / ADAPTER_CONFIG).exists():
            try:
                card = read_card(path)
            except AdapterError as error:
                card = AdapterCard(name=path.name, error=str(error))
            found.append(AdapterInfo(name=path.name, path=path, card=card))
    return found


def resolve_adapter(name_or_path: str) -> Path:
    """Folder of an adapter given its registry name or a folder holding adapter_config.json.

    Raises:
        AdapterError: not found.
    """
    path = Path(str(name_or_path)).expanduser()
    if path.is_dir():
        if not (path / ADAPTER_CONFIG).exists():
            raise AdapterError(f"'{name_or_path}' is a folder but not a peft adapter "
                               f"({ADAPTER_CONFIG} missing).")
        return path
    candidate = _registered(str(name_or_path))
    if candidate is not None:
        return candidate
    known = ", ".join(info.name for info in list_adapters()) or "none yet"
    raise AdapterError(f"Adapter '{name_or_path}' not found (registered adapters: {known}).")


def read_card(path: Path) -> AdapterCard:
    """The adapter's card.json (an empty card when there is none)."""
    card_path = Path(path) / CARD_FILE
    if not card_path.exists():
        return AdapterCard(name=Path(path).name)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AdapterError(f"The card of adapter '{Path(path).name}' is unreadable: {error}")
    if not isinstance(card, dict):
        raise AdapterError(f"The card of adapter '{Path(path).name}' is not a JSON object.")
    try:
        return AdapterCard.from_dict(card)
    except TypeError as error:
        raise AdapterError(f"The card of adapter '{Path(path).name}' is malformed: {error}")


def _write_card(folder: Path, card: AdapterCard) -> None:
    """Write card.json (UTF-8, indented) atomically."""
    atomic_write(folder / CARD_FILE,
                 json.dumps(card.to_dict(), indent=2, default=str, ensure_ascii=False))


def check_new_adapter(name: str, overwrite: bool = False) -> str:
    """The name of an adapter about to be trained or saved, checked before any work.

    Returns:
        name, unchanged.
    Raises:
        AdapterError: the name would need rewriting, or an adapter (or anything else) of
            that name exists and overwrite is False.
    """
    name = _registry_name(name)
    if (adapters_dir() / name).exists() and not overwrite:
        raise AdapterError(f"An adapter named '{name}' already exists; choose another name "
                           "or allow replacing it (--overwrite on the command line).")
    return name


def update_card(name_or_path: str | Path, **changes: Any) -> AdapterCard:
    """Set fields of an adapter's card (e.g. temperature_sweep) and write it atomically.

    Args:
        name_or_path: registry name or adapter folder.
        **changes: AdapterCard field -> new value (unknown names refused).
    Returns:
        The updated card. The adapter's weights, and so its fingerprint, are untouched.
    Raises:
        AdapterError: no such adapter, or an unknown card field.
    """
    folder = resolve_adapter(str(name_or_path))
    known = {f.name for f in fields(AdapterCard)} - {"extra", "error", "name"}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise AdapterError(f"unknown adapter card field(s): {', '.join(unknown)}.")
    card = read_card(folder)
    for key, value in changes.items():
        setattr(card, key, value)
    _write_card(folder, card)
    return card


def save_adapter(write: Callable[[Path], None], name: str, card: AdapterCard | dict, *,
                 overwrite: bool = False) -> Path:
    """Save an adapter atomically: it appears in the registry only once complete.

    Args:
        write: fills a temporary folder with the adapter (e.g. peft_model.save_pretrained).
        name: registry name, stored exactly as given (check_name; never rewritten).
        card: the AdapterCard (or its dict); its name is set and `created` is stamped.
        overwrite: replace an existing adapter of that name.
    Returns:
        The adapter's folder.
    Raises:
        AdapterError: bad or taken name (without overwrite), write() failed (disk full ...)
            or produced no adapter; nothing is left behind.
    """
    target = adapters_dir() / check_new_adapter(name, overwrite)
    card = AdapterCard.from_dict(card) if isinstance(card, dict) else card
    try:
        with staged_folder(target, overwrite=overwrite, what=f"adapter '{name}'") as temp:
            _fill(write, temp, name)
            card.name = name
            card.created = card.created or datetime.now(timezone.utc).isoformat(
                timespec="seconds")
            _write_card(temp, card)
    except AdapterError:
        raise
    except SimError as error:
        raise AdapterError(f"Adapter '{name}' was not saved: {error}") from error
    return target


def _fill(write: Callable[[Path], None], folder: Path, name: str) -> None:
    """Run write(folder); a full or read-only disk becomes one AdapterError."""
    try:
        write(folder)
    except Exception as error:
        if not is_storage_failure(error):
            raise
        raise AdapterError(f"Adapter '{name}' was not saved: "
                           f"{failure_message(error, folder.parent)} Nothing was "
                           "changed in the registry.") from error
    if not (folder / ADAPTER_CONFIG).exists():
        raise AdapterError(f"Saving adapter '{name}' produced no {ADAPTER_CONFIG}.")


def rename_adapter(old: str, new: str) -> Path:
    """Rename a registered adapter (its card's name follows). AdapterError if new is taken."""
    source = resolve_adapter_in_registry(old)
    new = _registry_name(new)
    target = adapters_dir() / new
    if target.exists():
        raise AdapterError(f"An adapter named '{new}' already exists.")
    card = read_card(source)
    card.name = new
    try:
        _write_card(source, card)     # the card first: a failed rename leaves a valid adapter
        source.rename(target)
    except (OSError, SimError) as error:
        raise AdapterError(f"Adapter '{old}' was not renamed: {error}") from error
    return target


def _registered(name: str) -> Path | None:
    """The registry folder of exactly this name (never a sanitised variant), or None."""
    if not is_valid_name(name):
        return None
    path = adapters_dir() / name
    return path if (path / ADAPTER_CONFIG).exists() else None


def resolve_adapter_in_registry(name: str) -> Path:
    """Folder of a registry adapter by its exact name (paths outside the registry and names
    that would need sanitising are refused: nothing else is ever deleted or renamed)."""
    path = _registered(name)
    if path is None:
        known = ", ".join(info.name for info in list_adapters()) or "none yet"
        raise AdapterError(f"Adapter '{name}' is not in the registry (registered adapters: "
                           f"{known}).")
    return path


def delete_adapter(name: str) -> None:
    """Remove a registered adapter (moved aside first so it vanishes in one step)."""
    remove_folder(resolve_adapter_in_registry(name))


def _zip_into(path: Path, stream) -> None:
    """Write the zip of an adapter folder (files under "<name>/") into a binary stream."""
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                archive.write(file, f"{path.name}/{file.name}")


def export_adapter_zip(name: str) -> bytes:
    """Zip of the adapter folder (files under "<name>/"), loadable with plain peft once unzipped."""
    buffer = io.BytesIO()
    _zip_into(resolve_adapter_in_registry(name), buffer)
    return buffer.getvalue()


def write_adapter_zip(name: str, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the adapter's zip to a file atomically (a failed export leaves no file).

    Raises:
        AdapterError: unknown adapter; SimError: out is a folder, its folder is missing, it
            exists (without overwrite) or the disk refused the write.
    """
    path = resolve_adapter_in_registry(name)
    with atomic_file(out, overwrite=overwrite) as stream:
        _zip_into(path, stream)
    return Path(out)


def adapter_fingerprint(path: Path) -> str:
    """Fingerprint of the adapter weights and config (the card is left out: it is editable)."""
    return folder_fingerprint(Path(path), patterns=(ADAPTER_CONFIG, ".safetensors"))


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
