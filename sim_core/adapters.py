"""The adapter registry: LoRA adapters (peft format) with a JSON card, in workspace/adapters.

Card keys this module reads (finetune writes them): "base_model" (name given to load_model),
"base_fingerprint" (LoadedModel.fingerprint of the base). Everything else is free-form.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sim_core.errors import AdapterError, SimError
from sim_core.fileio import folder_fingerprint
from sim_core.workspace import safe_name, subdir

CARD_FILE = "card.json"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class AdapterInfo:
    """One registered adapter."""

    name: str
    path: Path
    card: dict


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
                card = {"error": str(error)}
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


def read_card(path: Path) -> dict:
    """The adapter's card.json as a dict ({} when there is none)."""
    card_path = Path(path) / CARD_FILE
    if not card_path.exists():
        return {}
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AdapterError(f"The card of adapter '{Path(path).name}' is unreadable: {error}")
    if not isinstance(card, dict):
        raise AdapterError(f"The card of adapter '{Path(path).name}' is not a JSON object.")
    return card


def _write_card(folder: Path, card: dict) -> None:
    """Write card.json (UTF-8, indented)."""
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2, default=str, ensure_ascii=False),
                                    encoding="utf-8")


def save_adapter(write: Callable[[Path], None], name: str, card: dict, *,
                 overwrite: bool = False) -> Path:
    """Save an adapter atomically: it appears in the registry only once complete.

    Args:
        write: fills a temporary folder with the adapter (e.g. peft_model.save_pretrained).
        name: registry name (sanitised with safe_name).
        card: JSON-serialisable metadata; "name" and "created" are added when missing.
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
        card = {"name": name, "created": datetime.now(timezone.utc).isoformat(
            timespec="seconds"), **card}
        card["name"] = name
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
    card["name"] = new
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
    base = card.get("base_model")
    if not base:
        try:
            config = json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise AdapterError(f"Adapter '{Path(path).name}': unreadable {ADAPTER_CONFIG} "
                               f"({error}).") from error
        base = config.get("base_model_name_or_path")
    return base, card.get("base_fingerprint")


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
