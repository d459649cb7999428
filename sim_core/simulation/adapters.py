"""The adapter registry: LoRA adapters (peft format) with their card
(sim_core.simulation.adapter_card), in workspace/adapters: list, find, save, rename, delete,
export.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sim_core.base.errors import AdapterError, SimError
from sim_core.base.reading import folder_fingerprint
from sim_core.base.workspace import check_name, is_valid_name, subdir
from sim_core.base.writing import (
    atomic_file,
    failure_message,
    is_storage_failure,
    remove_folder,
    staged_folder,
)
from sim_core.simulation.adapter_card import (
    ADAPTER_CONFIG,
    AdapterCard,
    read_card,
    write_card,
)


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
    write_card(folder, card)
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
            card.created = card.created or datetime.now(UTC).isoformat(
                timespec="seconds")
            write_card(temp, card)
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
        write_card(source, card)     # the card first: a failed rename leaves a valid adapter
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


