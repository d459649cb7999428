"""`python -m sim_core adapters list|rename|delete|export`: the adapter registry.

Example:
    python -m sim_core adapters list --json
    python -m sim_core adapters rename gss-lora gss-lora-v1
    python -m sim_core adapters export gss-lora-v1 --out gss-lora-v1.zip
    python -m sim_core adapters delete gss-lora-v1
"""

from __future__ import annotations

import argparse
import json

from sim_core.commands import common
from sim_core.simulation import adapters


def register(subparsers) -> None:
    """Add the `adapters` subcommand with its own list/rename/delete/export actions."""
    parser = subparsers.add_parser("adapters", help="list, rename, delete or export adapters",
                                   description="Manage the LoRA adapters in the workspace.")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list adapters with their held-out scores")
    listing.add_argument("--json", action="store_true", help="print JSON")
    rename = actions.add_parser("rename", help="rename an adapter")
    rename.add_argument("old")
    rename.add_argument("new")
    actions.add_parser("delete", help="delete an adapter").add_argument("name")
    export = actions.add_parser("export", help="write an adapter as a zip file")
    export.add_argument("name")
    export.add_argument("--out", type=common.output_file,
                        help="zip file to write (default: NAME.zip; missing folders are made)")
    common.add_overwrite_arg(export, "file")
    parser.set_defaults(func=run)


def print_list(as_json: bool) -> None:
    """The registry as JSON or one line per adapter."""
    infos = adapters.list_adapters()
    if as_json:
        print(json.dumps([{"name": i.name, "path": str(i.path), "card": i.card.to_dict()}
                          for i in infos], default=str))
        return
    if not infos:
        print("no adapters yet")
    for info in infos:
        after = (info.card.after or {}).get("kl")
        print(f"{info.name}\tbase={info.card.base_model}\tdate={info.card.date}"
              + (f"\theld-out KL={after:.4f}" if after is not None else ""))


def run(args: argparse.Namespace) -> int:
    """Carry out one registry action."""
    if args.action == "list":
        print_list(args.json)
    elif args.action == "rename":
        print(adapters.rename_adapter(args.old, args.new))
    elif args.action == "delete":
        adapters.delete_adapter(args.name)
        print(f"deleted {args.name}")
    else:
        out = args.out or common.output_file(f"{args.name}.zip")
        print(adapters.write_adapter_zip(args.name, out, overwrite=args.overwrite))
    return 0
