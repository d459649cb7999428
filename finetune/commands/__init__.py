"""Training subcommands (`train`, `eval`), in the same register/run shape as sim_core.commands."""

FINETUNE_COMMANDS = ("finetune.commands.train", "finetune.commands.eval")
