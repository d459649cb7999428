"""Arguments every command spells the same way, and how they become core objects.

- data: --data FILE | demo name | saved survey name, --codebook, --weight / --unweighted,
  --wave, --wave-column, --demographics, --questions, --keep-nonresponse, --population,
  --strata, --psu, --design-effect, --question (ids: repeatable or comma-separated), --by,
  --bins, --json;
- model: --model (base model), --adapter, --dtype;
- simulation: one flag per SimConfig setting (generated from its fields: sim_core.base.options);
- storage: names checked as typed (add_name_arg), output files checked before any work
  (output_file, check_outputs, --overwrite).
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from sim_core.base import options
from sim_core.base.errors import DataError, SimError
from sim_core.base.reading import number
from sim_core.base.workspace import check_name
from sim_core.base.writing import check_output
from sim_core.evaluation.baselines import BASELINES, check_names
from sim_core.simulation.backends import SENT_TO_SERVER, BackendConfig
from sim_core.simulation.config import SimConfig
from sim_core.simulation.devices import resolve_device
from sim_core.simulation.handle import ModelHandle
from sim_core.simulation.models import load_model
from sim_core.simulation.simulate import RunPlan, check_budget, plan_rows
from sim_core.survey.attributes import check_bins, with_slice_attributes
from sim_core.survey.demo import DEMOS, load_demo
from sim_core.survey.notes import columns_in_use, warning_lines
from sim_core.survey.readers import load_survey
from sim_core.survey.schema import Question, Survey
from sim_core.survey.workspace_surveys import load_saved, saved_surveys


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
                        help="survey file (respondent CSV or .xlsx, SPSS .sav/.zsav/.por, Stata "
                             f".dta, marginals CSV, SubPOP JSONL), a demo ({', '.join(DEMOS)}) or "
                             "the name of a saved survey")
    parser.add_argument("--codebook", default=None,
                        help="codebook CSV for respondent data (wording, options, missing "
                             "codes, roles); write one with `python -m sim_core codebook`")
    weight = parser.add_mutually_exclusive_group()
    weight.add_argument("--weight", default=None, help="weight column of respondent data")
    weight.add_argument("--unweighted", action="store_true",
                        help="use no weight although the file has weight-like columns")
    parser.add_argument("--wave", default=None, help="wave/year to use (column given with "
                        "--wave-column for respondent data)")
    parser.add_argument("--wave-column", default=None, help="wave/year column of respondent data")
    add_reader_args(parser)
    parser.add_argument("--question", action="append", default=None,
                        help="question id(s): repeatable, or several comma-separated; an id "
                             "that holds a comma is taken whole, or write it in double quotes "
                             '(--question \'"a,b",c\')'
                             + (" (default: every question)" if questions == "all" else ""))
    parser.add_argument("--by", default="", help="slice attribute(s), comma-separated, "
                        "e.g. sex,age (crossed): demographics, or any question of "
                        "respondent data (e.g. party affiliation asked as a question)")
    parser.add_argument("--bins", action="append", default=[],
                        help='bands for a numeric attribute, e.g. "age=18,30,45,65,200" '
                             "(repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(questions_default=questions)


def add_reader_args(parser: argparse.ArgumentParser) -> None:
    """Roles, nonresponse, population and design options of respondent data."""
    parser.add_argument("--demographics", default=None,
                        help="demographic columns, comma-separated (slices and classifier "
                             "features; default: codebook roles, else guessed by name)")
    parser.add_argument("--questions", default=None,
                        help="columns to read as questions, comma-separated (default: "
                             "codebook roles, else labelled / few-valued columns)")
    parser.add_argument("--keep-nonresponse", action="store_true",
                        help="keep options labelled Don't know / Refused / ... as options")
    parser.add_argument("--population", default=None,
                        help='who the survey speaks for, named in the prompt, e.g. "adults '
                             'in Germany (2018)"')
    parser.add_argument("--strata", default=None, help="stratum column (design-based intervals)")
    parser.add_argument("--psu", default=None,
                        help="PSU / cluster column (design-based intervals)")
    parser.add_argument("--design-effect", type=float, default=None,
                        help="a known design effect (>= 1) widening the intervals when "
                             "strata/PSU columns are not available")


def add_model_args(parser: argparse.ArgumentParser, *, adapters: str = "many") -> None:
    """--model (base model), --adapter and --dtype, and where the model runs: --backend
    local|completions|chat with the server's settings (one flag per BackendConfig field).

    Args:
        adapters: "many" (repeatable; the base model is always included too), "one"
            (optional, one), "required" (exactly one) or "none" (no --adapter flag).
    """
    parser.add_argument("--model", default="default",
                        help="base model: 'default' (the embedded SmolLM2-135M-Instruct), a "
                             "model folder, a model name in the workspace or a hub id")
    if adapters == "many":
        parser.add_argument("--adapter", action="append", default=[],
                            help="LoRA adapter (name or folder); repeatable; the base model "
                                 "is always compared too")
    elif adapters != "none":
        parser.add_argument("--adapter", required=adapters == "required", default=None,
                            help="LoRA adapter (registry name or folder)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16",
                                                            "float16"),
                        help="weights precision (auto: bfloat16, measured fastest on CPU; "
                             "float16 on GPUs without bfloat16)")
    options.add_arguments(parser.add_argument_group(
        "backend", "where the model runs: in this process (local), behind an OpenAI-compatible "
        "/v1/completions endpoint such as `vllm serve` (completions), or behind a chat API "
        "such as OpenAI's or your own vLLM / SGLang / Ollama server (chat); --adapter then "
        "names an adapter the server serves by name. " + SENT_TO_SERVER), BackendConfig)


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
    """SimConfig from the flags of add_simulation_args (SimError when out of bounds); the
    device is checked here too (CUDA present, index in range), before any data or model."""
    config = options.from_arguments(SimConfig, args)
    resolve_device(config.device)
    return config


def _device(args: argparse.Namespace) -> str:
    """--device (a SimConfig flag), "auto" when not given."""
    return getattr(args, "device", None) or "auto"


def models_from_args(args: argparse.Namespace) -> list:
    """The base model, then base + each --adapter (for commands that compare checkpoints)."""
    adapters = args.adapter if isinstance(args.adapter, list) else [args.adapter]
    return _checkpoints(args, [None, *(a for a in adapters if a)])


def model_from_args(args: argparse.Namespace):
    """The one model a command runs: --model with its --adapter, if any."""
    return _checkpoints(args, [getattr(args, "adapter", None) or None])[0]


def _checkpoints(args: argparse.Namespace, adapters: list[str | None]) -> list:
    """Local models, or served ones (--backend completions or chat; its flags checked first)."""
    backend = options.from_arguments(BackendConfig, args)
    if backend.backend == "local":
        return [load_model(args.model, adapter, dtype=args.dtype, device=_device(args))
                for adapter in adapters]
    if args.model != "default" or args.dtype != "auto" or _device(args) != "auto":
        raise SimError("--model, --dtype and --device are for the local backend; the endpoint "
                       "serves its own model (--served-model).")
    return [backend.connect(adapter) for adapter in adapters]


@dataclass(frozen=True)
class Pair:
    """One (question, slice) a command will simulate (the shape plan_rows reads)."""

    question: Question
    slice: dict


def announce_plan(models: list[ModelHandle], rows: list, config: SimConfig) -> RunPlan | None:
    """Before a run that sends prompts to a server: print what it will send (requests and
    tokens, answers already cached left out) and refuse it when it is over --max-requests
    (nothing is sent). Local models only: nothing to announce (None).

    Args:
        models: the checkpoints; rows: (question, slice) rows (.question, .slice); config: the
            run's SimConfig, with the survey's prompt style when it has one.
    """
    if not any(lm.remote for lm in models):
        return None
    return announce(sum((plan_rows(lm, rows, config) for lm in models), RunPlan()), config)


def announce(plan: RunPlan, config: SimConfig) -> RunPlan:
    """Print a run's plan and what leaves the machine; refuse it when it is over
    --max-requests (nothing is sent)."""
    print(f"plan: {plan.text()}. {SENT_TO_SERVER}", file=sys.stderr)
    check_budget(plan, config.max_requests)
    return plan


def survey_from_args(args: argparse.Namespace) -> Survey:
    """The survey named by --data: a file, a demo name or a saved survey's name.

    Returns:
        Survey; DataError when the file is missing or invalid.
    """
    data = args.data
    if not Path(data).exists():
        if data in DEMOS:
            survey = load_demo(data)
        elif data in saved_surveys():
            survey = load_saved(data)
        else:
            raise DataError(f"no such file, demo ({', '.join(DEMOS)}) or saved survey "
                            f"({', '.join(saved_surveys()) or 'none yet'}).", file=data)
        if getattr(args, "population", None):
            survey.population = args.population
        return survey
    codebook = getattr(args, "codebook", None)
    if codebook is not None and not Path(codebook).exists():   # special files: load_bytes
        raise DataError("no such codebook file.", file=codebook)
    return load_survey(data, codebook=codebook, **reader_kwargs(args))


def _names(text: str | None) -> list[str] | None:
    """"a, b,c" -> ["a", "b", "c"]; None -> None."""
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def reader_kwargs(args: argparse.Namespace) -> dict:
    """ReadOptions keyword arguments from the shared data arguments (only those given)."""
    values = {"weight": getattr(args, "weight", None),
              "wave": getattr(args, "wave_column", None),
              "demographics": _names(getattr(args, "demographics", None)),
              "questions": _names(getattr(args, "questions", None)),
              "keep_nonresponse": getattr(args, "keep_nonresponse", False),
              "unweighted": getattr(args, "unweighted", False),
              "population": getattr(args, "population", None),
              "strata": getattr(args, "strata", None), "psu": getattr(args, "psu", None),
              "design_effect": getattr(args, "design_effect", None)}
    return {k: v for k, v in values.items() if v not in (None, False)}


def warnings_for(survey: Survey, args: argparse.Namespace, columns=(),
                 where: str | None = None) -> list[str]:
    """The reading warnings of a run: survey-wide ones, the notes about the columns in use
    (`columns`: questions and slice attributes; the weight, wave and design columns are
    added), and one line counting the notes about other columns, pointing to the codebook."""
    data = getattr(args, "data", None)
    where = where or ("see the codebook (`python -m sim_core codebook --data "
                      f"{shlex.quote(str(data))}`, its notes column)" if data else
                      "see the codebook's notes column")
    return warning_lines(survey, columns_in_use(survey, columns), where)


def print_warnings(survey: Survey, args: argparse.Namespace, columns=(),
                   where: str | None = None) -> None:
    """warnings_for on stderr, so that --json output on stdout stays valid JSON."""
    for warning in warnings_for(survey, args, columns, where):
        print(f"warning: {warning}", file=sys.stderr)


def by_from_args(args: argparse.Namespace) -> list[str]:
    """Slice attribute names from --by (comma-separated), as typed; slicing_from_args checks
    them against the survey (case-insensitively, demographics or questions)."""
    return [part.strip() for part in (getattr(args, "by", "") or "").split(",") if part.strip()]


def bins_from_args(args: argparse.Namespace) -> dict[str, list[float]] | None:
    """--bins "age=18,30,45,65,200" (repeatable) -> {"age": [18, 30, 45, 65, 200]}; edges
    that are not increasing finite numbers are one message naming the flag and the edges."""
    bins = {}
    for text in getattr(args, "bins", None) or []:
        name, _, edges = text.partition("=")
        cells = [e.strip() for e in edges.split(",") if e.strip()]
        values = [number(e) for e in cells]        # None for text, nan and inf
        if not name.strip() or len(values) < 2 or None in values \
                or any(not b > a for a, b in zip(values, values[1:])):
            raise DataError(f"--bins: '{text}' needs an attribute name and at least two "
                            "increasing finite numbers as edges"
                            + (f" (got {', '.join(cells)})" if cells else "")
                            + ", e.g. age=18,30,45,65,200 (200: an open top band).")
        if name.strip() in bins:
            raise DataError(f"--bins: '{name.strip()}' is given twice; give its edges once.")
        bins[name.strip()] = values
    return bins or None


def slicing_from_args(args: argparse.Namespace, survey: Survey) -> tuple[
        Survey, list[str], dict[str, list[float]] | None, list[str]]:
    """The survey of the run, its slice attributes (--by), bands (--bins) and questions.

    --by names demographics or, for respondent data, any question of the survey: it becomes
    a slice attribute for this run (sim_core.survey.attributes), so it is no longer one of
    the run's questions; a question named with --question cannot be sliced by itself.
    --bins must concern a numeric attribute of the run, else it is refused with the reason.

    Returns:
        (survey, by, bins, question ids).
    """
    names = by_from_args(args)
    asked = question_ids(args, survey) if getattr(args, "question", None) else []
    try:
        survey, by = with_slice_attributes(survey, names, asked)
    except DataError as error:
        raise DataError(f"--by: {error}") from None
    bins = bins_from_args(args)
    try:
        check_bins(survey, bins, by if names else None)
    except DataError as error:
        raise DataError(f"--bins: {error}") from None
    return survey, by, bins, question_ids(args, survey)


def question_ids(args: argparse.Namespace, survey: Survey) -> list[str]:
    """Question ids from --question (repeatable; comma-separated, double quotes around an id
    holding a comma), checked against the survey; every question when the command takes all
    by default and none was named."""
    values = getattr(args, "question", None) or []
    values = [values] if isinstance(values, str) else values
    ids = list(dict.fromkeys(q for value in values for q in _question_value(value, survey)))
    if not ids:
        if getattr(args, "questions_default", "required") == "all":
            return list(survey.questions)
        raise DataError("--question: give a question id; the survey has: "
                        + ", ".join(list(survey.questions)[:30]))
    unknown = [q for q in ids if q not in survey.questions]
    if unknown:
        hint = ""
        if survey.codebook and set(unknown) & set(survey.codebook):
            hint = " (the column is not read as a question: name it with --questions)"
        raise DataError(f"--question: unknown question(s) {', '.join(unknown)}{hint}; the "
                        "survey has: " + ", ".join(list(survey.questions)[:30]))
    return ids


def _question_value(text: str, survey: Survey) -> list[str]:
    """The ids one --question value names: a comma-separated list (CSV quoting), or the
    whole text when that is an id; refused when it could be read both ways."""
    try:
        parts = [p.strip() for p in next(csv.reader([text], skipinitialspace=True)) if p.strip()]
    except (csv.Error, StopIteration):
        parts = [text.strip()]
    whole = text.strip()
    if len(parts) > 1 and whole in survey.questions:
        if all(p in survey.questions for p in parts):
            raise DataError(f"--question: '{whole}' is a question id and also a list of the ids "
                            f"{', '.join(parts)}; write --question '\"{whole}\"' for the one "
                            "question or give each id with its own --question.")
        return [whole]
    return parts


def add_name_arg(parser: argparse.ArgumentParser, flag: str, what: str, **kwargs) -> None:
    """A name the user stores something under (survey, adapter), checked by argparse: used
    exactly as typed or refused with a suggestion (never rewritten)."""
    def parse(text: str) -> str:
        try:
            return check_name(text, what)
        except SimError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    parse.__name__ = "name"
    parser.add_argument(flag, type=parse, **kwargs)


def output_file(text: str) -> Path:
    """argparse type of a file to write: not a folder, no file in the way of its folder
    (checked before any work; whether it may be replaced is checked by check_outputs)."""
    try:
        return check_output(Path(text))
    except SimError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_overwrite_arg(parser: argparse.ArgumentParser, what: str) -> None:
    """--overwrite: replace an existing `what` (nothing is replaced without it)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace an existing {what} (without it, an existing one is "
                             "never replaced)")


def check_outputs(args: argparse.Namespace, *paths: Path | None) -> None:
    """Refuse output files that exist unless --overwrite was given (before any work)."""
    for path in paths:
        if path is not None:
            check_output(path, overwrite=getattr(args, "overwrite", False))


def tqdm_progress(desc: str, unit: str = "prompt"):
    """A tqdm bar on stderr and the progress(done, total) callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(total=1, desc=desc, unit=unit, file=sys.stderr, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
    return bar, progress
