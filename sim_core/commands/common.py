"""Arguments shared by the data-reading subcommands (marginals, baselines, compare, report).

--data FILE (or a demo name), --codebook, --weight, --wave, --question, --by, --bins, --json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sim_core.errors import DataError
from sim_core.survey import Survey


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """Add the shared survey arguments to a subcommand parser.

    A subcommand may redefine --json afterwards (e.g. `report --json FILE`): the parser
    resolves that conflict in favour of the later definition.
    """
    from sim_core.demo import DEMOS

    # argparse copies conflict_handler into each argument group at creation, so set both;
    # "resolve" lets a later add_argument("--json", ...) replace ours instead of failing.
    for container in (parser, *parser._action_groups):
        container.conflict_handler = "resolve"
    parser.add_argument("--data", required=True,
                        help="survey file (respondent CSV, marginals CSV, SubPOP JSONL) or "
                             f"a demo: {', '.join(DEMOS)}")
    parser.add_argument("--codebook", default=None, help="codebook CSV for respondent data")
    parser.add_argument("--weight", default=None, help="weight column of respondent data")
    parser.add_argument("--wave", default=None, help="wave/year to use (column given with "
                        "--wave-column for respondent data)")
    parser.add_argument("--wave-column", default=None, help="wave/year column of respondent data")
    parser.add_argument("--question", default=None,
                        help="question id (several separated by commas where accepted)")
    parser.add_argument("--by", default="", help="slice attribute(s), comma-separated, "
                        "e.g. sex,age (crossed)")
    parser.add_argument("--bins", action="append", default=[],
                        help='bands for a numeric attribute, e.g. "age=18,30,45,65,200" '
                             "(repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """--device and --batch-size, generated from SimConfig's fields (their help and bounds)."""
    from sim_core.options import add_arguments
    from sim_core.simulate import SimConfig

    add_arguments(parser, SimConfig, names=("device", "batch_size"))


def add_simulation_args(parser: argparse.ArgumentParser) -> None:
    """--orders, --mode, --samples, --temperature, --dtype, --no-cache, --device, --batch-size
    (simulate, compare)."""
    from sim_core.simulate import DEFAULT_ORDERS

    parser.add_argument("--orders", type=int, default=None,
                        help="option orders averaged against letter bias (default: each "
                             f"checkpoint's own: {DEFAULT_ORDERS} for a base model, 1 for an "
                             "adapter trained on the original option order)")
    parser.add_argument("--mode", choices=("first-token", "sample"), default="first-token")
    parser.add_argument("--samples", type=int, default=20, help="respondents per slice (sample)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16")
    parser.add_argument("--no-cache", action="store_true", help="ignore the result cache")
    add_device_args(parser)


def sim_config_from_args(args: argparse.Namespace):
    """SimConfig from the options of add_simulation_args."""
    from sim_core.simulate import SimConfig

    return SimConfig(mode=args.mode, orders=args.orders and max(1, args.orders),
                     samples=args.samples, temperature=args.temperature,
                     use_cache=not args.no_cache, **device_settings(args))


def device_settings(args: argparse.Namespace) -> dict:
    """SimConfig's device and batch_size from add_device_args (the defaults where not given)."""
    return {"device": args.device or "auto", "batch_size": args.batch_size}


def survey_from_args(args: argparse.Namespace) -> Survey:
    """Load the survey named by --data (a file, or a demo name) with the other options.

    Returns:
        Survey; DataError when the file is missing or invalid.
    """
    from sim_core.demo import DEMOS, load_demo
    from sim_core.readers import load_survey

    data = args.data
    if data in DEMOS and not Path(data).exists():
        return load_demo(data)
    if not Path(data).is_file():
        raise DataError(f"no such file, and not a demo ({', '.join(DEMOS)}).", file=data)
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
    """Question ids from --question (comma-separated), checked against the survey."""
    ids = [q.strip() for q in (getattr(args, "question", None) or "").split(",") if q.strip()]
    if not ids:
        raise DataError("--question: give a question id; the survey has: "
                        + ", ".join(list(survey.questions)[:30]))
    unknown = [q for q in ids if q not in survey.questions]
    if unknown:
        raise DataError(f"--question: unknown question(s) {', '.join(unknown)}; the survey "
                        "has: " + ", ".join(list(survey.questions)[:30]))
    return ids
