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


@pytest.mark.parametrize("command", ["train", "eval"])
def test_finetune_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        finetune_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert f"python -m finetune {command}" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["adapters", "list"], ["adapters", "rename"],
                                  ["adapters", "export"], ["surveys", "save"]])
def test_nested_action_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*argv, "--help"])
    assert exit_info.value.code == 0
    assert " ".join(argv) in capsys.readouterr().out


def test_one_console_script_has_every_subcommand(capsys):
    from finetune.cli import opinion_sim

    with pytest.raises(SystemExit):
        opinion_sim(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in [*SUBCOMMANDS, "train", "eval"])
