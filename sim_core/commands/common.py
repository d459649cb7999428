"""Arguments every command spells the same way, and how they become core objects.

- data: --data FILE | demo name | saved survey name, --codebook, --weight, --wave,
  --wave-column, --question (ids, comma-separated), --by, --bins, --json;
- model: --model (base model), --adapter, --dtype;
- simulation: one flag per SimConfig setting (generated from its fields: sim_core.options).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim_core import options
from sim_core.baselines import BASELINES, check_names
from sim_core.demo import DEMOS, load_demo
from sim_core.errors import DataError
from sim_core.models import load_model
from sim_core.readers import load_survey
from sim_core.simulate import SimConfig
from sim_core.store import load_saved, saved_surveys
from sim_core.survey import Survey


def add_data_args(parser: argparse.ArgumentParser, *, questions: str = "required",
                  data_required: bool = True) -> None:
    """Add the shared survey arguments to a subcommand parser.

    Args:
        parser: the subcommand's parser.
        questions: "required" (--question must name at least one) or "all" (default: every
            question of the survey).
        data_required: False when the command can get its data elsewhere (a job folder).

    A subcommand may redefine --json afterwards (e.g. `report --json FILE`): the parser
    resolves that conflict in favour of the later definition.
    """
    # argparse copies conflict_handler into each argument group at creation, so set both;
    # "resolve" lets a later add_argument("--json", ...) replace ours instead of failing.
    for container in (parser, *parser._action_groups):
        container.conflict_handler = "resolve"
    parser.add_argument("--data", required=data_required,
                        help="survey file (respondent CSV, marginals CSV, SubPOP JSONL), a "
                             f"demo ({', '.join(DEMOS)}) or the name of a saved survey")
    parser.add_argument("--codebook", default=None, help="codebook CSV for respondent data")
    parser.add_argument("--weight", default=None, help="weight column of respondent data")
    parser.add_argument("--wave", default=None, help="wave/year to use (column given with "
                        "--wave-column for respondent data)")
    parser.add_argument("--wave-column", default=None, help="wave/year column of respondent data")
    parser.add_argument("--question", default=None,
                        help="question id(s), comma-separated"
                             + (" (default: every question)" if questions == "all" else ""))
    parser.add_argument("--by", default="", help="slice attribute(s), comma-separated, "
                        "e.g. sex,age (crossed)")
    parser.add_argument("--bins", action="append", default=[],
                        help='bands for a numeric attribute, e.g. "age=18,30,45,65,200" '
                             "(repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(questions_default=questions)


def add_model_args(parser: argparse.ArgumentParser, *, adapters: str = "many") -> None:
    """--model (base model), --adapter and --dtype.

    Args:
        adapters: "many" (repeatable; the base model is always included too), "one"
            (optional, one) or "required" (exactly one).
    """
    parser.add_argument("--model", default="default",
                        help="base model: 'default' (the embedded SmolLM2-135M-Instruct), a "
                             "model folder, a model name in the workspace or a hub id")
    if adapters == "many":
        parser.add_argument("--adapter", action="append", default=[],
                            help="LoRA adapter (name or folder); repeatable; the base model "
                                 "is always compared too")
    else:
        parser.add_argument("--adapter", required=adapters == "required", default=None,
                            help="LoRA adapter (registry name or folder)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16",
                                                            "float16"),
                        help="weights precision (auto: bfloat16, measured fastest on CPU)")


def add_simulation_args(parser: argparse.ArgumentParser) -> None:
    """One flag per SimConfig setting, with its help, default and bounds."""
    options.add_arguments(parser, SimConfig)


def add_baselines_arg(parser: argparse.ArgumentParser, names=None, default=None) -> None:
    """--baselines, comma-separated names checked by argparse (before any model loads).

    Args:
        names: the names allowed (default: every baseline).
        default: the names used when the flag is not given (default: all allowed).
    """
    names = tuple(names or BASELINES)
    default = list(default or names)

    def parse(text: str) -> list[str]:
        try:
            return check_names([n.strip() for n in text.split(",") if n.strip()], names)
        except DataError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    parser.add_argument("--baselines", type=parse, default=default,
                        help="comma-separated, from: " + "; ".join(
                            f"{n} ({BASELINES[n].label})" for n in names)
                        + (" (default: all of them)" if default == list(names) else
                           f" (default: {','.join(default)})"))


def sim_config_from_args(args: argparse.Namespace) -> SimConfig:
    """SimConfig from the flags of add_simulation_args (SimError when out of bounds)."""
    return options.from_arguments(SimConfig, args)


def models_from_args(args: argparse.Namespace) -> list:
    """The base model, then base + each --adapter (for commands that compare checkpoints)."""
    adapters = args.adapter if isinstance(args.adapter, list) else [args.adapter]
    return [load_model(args.model, dtype=args.dtype)] + [
        load_model(args.model, adapter=a, dtype=args.dtype) for a in adapters if a]


def model_from_args(args: argparse.Namespace):
    """The one model a command runs: --model with its --adapter, if any."""
    return load_model(args.model, args.adapter or None, dtype=args.dtype)


def survey_from_args(args: argparse.Namespace) -> Survey:
    """The survey named by --data: a file, a demo name or a saved survey's name.

    Returns:
        Survey; DataError when the file is missing or invalid.
    """
    data = args.data
    if not Path(data).exists():
        if data in DEMOS:
            return load_demo(data)
        if data in saved_surveys():
            return load_saved(data)
        raise DataError(f"no such file, demo ({', '.join(DEMOS)}) or saved survey "
                        f"({', '.join(saved_surveys()) or 'none yet'}).", file=data)
    kwargs = {}
    if getattr(args, "weight", None):
        kwargs["weight"] = args.weight
    if getattr(args, "wave_column", None):
        kwargs["wave"] = args.wave_column
    codebook = getattr(args, "codebook", None)
    if codebook is not None and not Path(codebook).is_file():
        raise DataError("no such codebook file.", file=codebook)
    return load_survey(data, codebook=codebook, **kwargs)


def by_from_args(args: argparse.Namespace, survey: Survey | None = None) -> list[str]:
    """Slice attributes from --by (comma-separated), checked against the survey if given.

    Attribute names match case-insensitively and come back as the survey spells them.
    """
    names = [part.strip() for part in (getattr(args, "by", "") or "").split(",") if part.strip()]
    if survey is None:
        return names
    known = {d.lower(): d for d in survey.demographics}
    result = []
    for name in names:
        if name not in survey.demographics and name.lower() not in known:
            raise DataError(f"--by: unknown attribute '{name}'; the survey has: "
                            + ", ".join(survey.demographics))
        result.append(name if name in survey.demographics else known[name.lower()])
    return result


def bins_from_args(args: argparse.Namespace) -> dict[str, list[float]] | None:
    """--bins "age=18,30,45,65,200" (repeatable) -> {"age": [18, 30, 45, 65, 200]}."""
    bins = {}
    for text in getattr(args, "bins", None) or []:
        name, _, edges = text.partition("=")
        try:
            values = [float(e) for e in edges.split(",") if e.strip()]
        except ValueError:
            raise DataError(f"--bins: '{text}' should look like age=18,30,45,65,200") from None
        if not name.strip() or len(values) < 2 or values != sorted(set(values)):
            raise DataError(f"--bins: '{text}' needs a name and at least two increasing "
                            "edges, e.g. age=18,30,45,65,200")
        bins[name.strip()] = values
    return bins or None


def question_ids(args: argparse.Namespace, survey: Survey) -> list[str]:
    """Question ids from --question (comma-separated), checked against the survey; every
    question when the command takes all by default and none was named."""
    ids = [q.strip() for q in (getattr(args, "question", None) or "").split(",") if q.strip()]
    if not ids:
        if getattr(args, "questions_default", "required") == "all":
            return list(survey.questions)
        raise DataError("--question: give a question id; the survey has: "
                        + ", ".join(list(survey.questions)[:30]))
    unknown = [q for q in ids if q not in survey.questions]
    if unknown:
        raise DataError(f"--question: unknown question(s) {', '.join(unknown)}; the survey "
                        "has: " + ", ".join(list(survey.questions)[:30]))
    return ids


def tqdm_progress(desc: str, unit: str = "prompt"):
    """A tqdm bar on stderr and the progress(done, total) callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(total=1, desc=desc, unit=unit, file=sys.stderr, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
    return bar, progress
