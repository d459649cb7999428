"""Arguments shared by the data-reading subcommands (marginals, baselines, compare, report).

--data FILE (or a demo name), --codebook, --weight, --wave, --question, --by, --bins, --json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sim_core.errors import DataError, SimError
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


def add_simulation_args(parser: argparse.ArgumentParser) -> None:
    """--orders, --mode, --samples, --temperature, --dtype, --no-cache (simulate, compare)."""
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


def add_backend_args(parser: argparse.ArgumentParser) -> None:
    """--backend local|openai and the endpoint options (simulate, compare, report, finetune eval)."""
    from sim_core.endpoint import BACKENDS, DEFAULT_CONCURRENCY, DEFAULT_TOP_LOGPROBS
    from sim_core.openai_http import DEFAULT_KEY_ENV, DEFAULT_TIMEOUT

    group = parser.add_argument_group(
        "backend", "where the model runs: in this process (local), or behind an "
        "OpenAI-compatible /v1/completions endpoint such as `vllm serve` (openai)")
    group.add_argument("--backend", choices=BACKENDS, default="local",
                       help="local: transformers here (default); openai: an endpoint")
    group.add_argument("--endpoint", default=None,
                       help="the server's URL, e.g. http://127.0.0.1:8000/v1 (--backend openai)")
    group.add_argument("--served-model", default=None,
                       help="the model's id on the server, as GET /v1/models lists it; an "
                            "adapter served by name is picked with --adapter")
    group.add_argument("--api-key-env", default=DEFAULT_KEY_ENV,
                       help="environment variable holding the API key (read at each request, "
                            f"never stored; default {DEFAULT_KEY_ENV}; unset: no key)")
    group.add_argument("--tokenizer", default=None,
                       help="local folder or hub id with the served model's tokenizer (its "
                            "chat template builds the prompts); 'default' = the embedded "
                            "model; default: the served model's id")
    group.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                       help=f"requests in flight at once (default {DEFAULT_CONCURRENCY})")
    group.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                       help=f"seconds to wait for one answer (default {DEFAULT_TIMEOUT:g})")
    group.add_argument("--top-logprobs", type=int, default=DEFAULT_TOP_LOGPROBS,
                       help="top log-probabilities asked for per prompt; letters outside "
                            f"them count 0 (default {DEFAULT_TOP_LOGPROBS}, vLLM's cap)")


def load_checkpoints(args: argparse.Namespace, base: str, adapters: list[str | None]) -> list:
    """One model per adapter (None = the base), local or through the endpoint.

    Refuses endpoint options with --backend local (and --model/--dtype with openai), so that
    a half-given choice never silently runs somewhere else.
    """
    if getattr(args, "backend", "local") != "openai":
        from sim_core.models import load_model

        given = [flag for flag, value in (("--endpoint", args.endpoint),
                                          ("--served-model", args.served_model),
                                          ("--tokenizer", args.tokenizer)) if value]
        if given:
            raise SimError(f"{', '.join(given)}: only with --backend openai.")
        dtype = getattr(args, "dtype", "auto")
        return [load_model(base, adapter, dtype=dtype) for adapter in adapters]
    from sim_core.endpoint import connect

    if not args.endpoint or not args.served_model:
        raise SimError("--backend openai needs --endpoint URL and --served-model NAME.")
    if base not in ("default", "", None) or getattr(args, "dtype", "auto") != "auto":
        raise SimError("--model/--base and --dtype are for the local backend; the endpoint "
                       "serves its own model (--served-model).")
    return [connect(args.endpoint, args.served_model, adapter, tokenizer=args.tokenizer,
                    api_key_env=args.api_key_env, timeout=args.timeout,
                    concurrency=args.concurrency, top_logprobs=args.top_logprobs)
            for adapter in adapters]


def sim_config_from_args(args: argparse.Namespace):
    """SimConfig from the options of add_simulation_args."""
    from sim_core.simulate import SimConfig

    return SimConfig(mode=args.mode, orders=args.orders and max(1, args.orders),
                     samples=args.samples, temperature=args.temperature,
                     use_cache=not args.no_cache)


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
