"""The adapter registry: LoRA adapters (peft format) with a JSON card, in workspace/adapters.

The card (card.json) is an AdapterCard: finetune writes it, the simulator, pages, reports
and the CLI read its fields; keys it does not know are kept in `extra` and written back.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sim_core.errors import AdapterError, SimError
from sim_core.fileio import folder_fingerprint
from sim_core.workspace import safe_name, subdir

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
        before, after: mean held-out scores of the base model and of the adapter.
        baselines: baseline name -> mean held-out scores.
        test_rows, steps, best_val_step, val_history, train_seconds: training facts.
        fairness: per-group gap against group size on the held-out rows, before and after
            training, the spread across groups and the groups whose gap grew
            (finetune.train; sim_core.fairness).
        temperature_sweep: the individual-level KL/RMSE temperature curve, the temperature
            chosen and on which respondents it was chosen (sim_core.individual.sweep_record).
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
    baselines: dict = field(default_factory=dict)
    test_rows: int | None = None
    steps: int | None = None
    best_val_step: int | None = None
    val_history: list = field(default_factory=list)
    train_seconds: float | None = None
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
    """safe_name, with the error re-raised as AdapterError."""
    try:
        return safe_name(name)
    except SimError as error:
        raise AdapterError(f"Adapter name: {error}") from error


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
    candidate = adapters_dir() / _registry_name(str(name_or_path))
    if (candidate / ADAPTER_CONFIG).exists():
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
    """Write card.json (UTF-8, indented) atomically: a reader never sees half a card."""
    text = json.dumps(card.to_dict(), indent=2, default=str, ensure_ascii=False)
    handle, temp = tempfile.mkstemp(prefix=".card-", suffix=".json", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, folder / CARD_FILE)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


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
        name: registry name (sanitised with safe_name).
        card: the AdapterCard (or its dict); its name is set and `created` is stamped.
        overwrite: replace an existing adapter of that name.
    Returns:
        The adapter's folder.
    Raises:
        AdapterError: name taken (without overwrite), or write() produced no adapter.
    """
    name = _registry_name(name)
    target = adapters_dir() / name
    if target.exists() and not overwrite:
        raise AdapterError(f"An adapter named '{name}' already exists; choose another name "
                           "or allow overwriting.")
    temp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=adapters_dir()))
    try:
        write(temp)
        if not (temp / ADAPTER_CONFIG).exists():
            raise AdapterError(f"Saving adapter '{name}' produced no {ADAPTER_CONFIG}.")
        card = AdapterCard.from_dict(card) if isinstance(card, dict) else card
        card.name = name
        card.created = card.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
        _write_card(temp, card)
        if target.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".trash-{name}-", dir=adapters_dir()))
            target.rename(trash / name)
            shutil.rmtree(trash, ignore_errors=True)
        temp.rename(target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return target


def rename_adapter(old: str, new: str) -> Path:
    """Rename a registered adapter (its card's name follows). AdapterError if new is taken."""
    source = resolve_adapter_in_registry(old)
    new = _registry_name(new)
    target = adapters_dir() / new
    if target.exists():
        raise AdapterError(f"An adapter named '{new}' already exists.")
    source.rename(target)
    card = read_card(target)
    card.name = new
    _write_card(target, card)
    return target


def resolve_adapter_in_registry(name: str) -> Path:
    """Folder of a registry adapter by name (paths outside the registry are refused)."""
    path = adapters_dir() / _registry_name(name)
    if not (path / ADAPTER_CONFIG).exists():
        raise AdapterError(f"Adapter '{name}' is not in the registry.")
    return path


def delete_adapter(name: str) -> None:
    """Remove a registered adapter (moved aside first so it vanishes in one step)."""
    path = resolve_adapter_in_registry(name)
    trash = Path(tempfile.mkdtemp(prefix=f".trash-{path.name}-", dir=adapters_dir()))
    path.rename(trash / path.name)
    shutil.rmtree(trash, ignore_errors=True)


def export_adapter_zip(name: str) -> bytes:
    """Zip of the adapter folder (files under "<name>/"), loadable with plain peft once unzipped."""
    path = resolve_adapter_in_registry(name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                archive.write(file, f"{path.name}/{file.name}")
    return buffer.getvalue()


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


def check_base(path: Path, lm: Any) -> None:
    """Refuse an adapter trained on another base model than lm's (AdapterError)."""
    base, fingerprint = adapter_base(path)
    if fingerprint:
        if fingerprint != lm.fingerprint:
            raise AdapterError(f"Adapter '{Path(path).name}' was trained on base model "
                               f"'{base or fingerprint}' (fingerprint {fingerprint}), not on "
                               f"'{lm.label}' (fingerprint {lm.fingerprint}).")
        return
    if base and not _same_base(str(base), lm):
        raise AdapterError(f"Adapter '{Path(path).name}' was trained on base model '{base}', "
                           f"not on '{lm.name}'.")


def _same_base(base: str, lm: Any) -> bool:
    """Whether a base model name/path recorded by peft refers to lm's base model."""
    loaded_path = getattr(getattr(lm.model, "config", None), "_name_or_path", "") or ""
    names = {lm.name, loaded_path, Path(lm.name).name, Path(loaded_path).name}
    if base in names or Path(base).name in names:
        return True
    if Path(base).is_dir():
        return folder_fingerprint(Path(base)) == lm.fingerprint
    return False
