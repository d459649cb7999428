"""Every CLI subcommand prints its help (argparse formats help strings lazily, so a stray
'%' only fails here) and names its options."""

import pytest

from finetune.cli import build_parser as finetune_parser
from sim_core.__main__ import SUBCOMMANDS, build_parser


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_sim_core_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert f"python -m sim_core {command}" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["train", "list", "eval", "rename", "delete", "export"])
def test_finetune_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        finetune_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert command in capsys.readouterr().out
