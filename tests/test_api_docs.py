"""The documentation against the code: docs/API.md's index of public names, the dotted names
and CLI examples in README.md and docs/*.md, the score table of docs/method.md, and the
relative links between the pages.

docs/API.md's format (one entry per line, outside fenced code blocks):

    ## `sim_core.survey`                                   a package heading
    - `sim_core.survey.readers.load_survey` — one line     an entry: module.name, em dash, text

Every entry must name an importable module and an attribute of it; every heading a package;
every sim_core sub-package (a folder with __init__.py) must have a heading. A line that looks
like an entry or a heading but breaks the format is an error, never silently skipped.
"""

from __future__ import annotations

import importlib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INDEX = ROOT / "docs" / "API.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

HEADING = re.compile(r"^## `((?:sim_core|finetune)(?:\.\w+)*)`$")
ENTRY = re.compile(r"^- `((?:sim_core|finetune)(?:\.\w+)+)` — \S.*$")
LOOKS_LIKE_ENTRY = re.compile(r"^\s*[-*]\s+`?(?:sim_core|finetune)\b")
LOOKS_LIKE_HEADING = re.compile(r"^#+\s+`?(?:sim_core|finetune)\b")
DOTTED = re.compile(r"\b((?:sim_core|finetune)(?:\.[A-Za-z_]\w*)+)")


@dataclass
class Index:
    packages: list[str] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def prose_lines(text: str):
    """(line number, line) of every line outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield number, line


def parse_index(text: str) -> Index:
    """Headings and entries of the index, and every line that breaks the format."""
    index = Index()
    for number, line in prose_lines(text):
        if match := HEADING.match(line):
            index.packages.append(match.group(1))
        elif match := ENTRY.match(line):
            index.entries.append(match.group(1))
        elif LOOKS_LIKE_ENTRY.match(line) or LOOKS_LIKE_HEADING.match(line):
            index.errors.append(f"line {number}: {line!r}")
    return index


def missing(dotted: str) -> str | None:
    """Why `module.name` does not resolve (None when it does)."""
    module, _, name = dotted.rpartition(".")
    try:
        found = importlib.import_module(module)
    except ImportError as error:
        return f"{dotted}: module {module} does not import ({error})"
    if not hasattr(found, name):
        return f"{dotted}: {module} has no {name!r}"
    home = getattr(getattr(found, name), "__module__", module)    # constants have none
    if home != module:      # imported there, not defined there: the index names its home
        return f"{dotted}: defined in {home}, not {module}"
    return None


def resolves(dotted: str) -> bool:
    """Whether a dotted name is a module, or attributes reached from its longest module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            if not hasattr(found, part):
                return False
            found = getattr(found, part)
        return True
    return False


@pytest.fixture(scope="module")
def index() -> Index:
    return parse_index(INDEX.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ docs/API.md


def test_the_parser_catches_planted_bad_lines():
    text = """## `sim_core.survey`
- `sim_core.survey.readers.load_survey` — good
- `sim_core.survey.readers.no_such_reader` — a name that is not there
- `sim_core.nowhere.thing` — a module that is not there
- `sim_core.survey.readers.load_survey` - a hyphen, not an em dash
- sim_core.survey.readers.load_survey — no backticks
## sim_core.report
```text
- `sim_core.inside.a.code.block` — ignored
```"""
    parsed = parse_index(text)
    assert parsed.packages == ["sim_core.survey"]
    assert parsed.entries == ["sim_core.survey.readers.load_survey",
                              "sim_core.survey.readers.no_such_reader",
                              "sim_core.nowhere.thing"]
    assert [e.split(":")[0] for e in parsed.errors] == ["line 5", "line 6", "line 7"]
    problems = [missing(name) for name in parsed.entries]
    assert problems[0] is None
    assert "has no 'no_such_reader'" in problems[1]
    assert "does not import" in problems[2]
    # a name a module merely imports is listed at its home
    problem = missing("sim_core.simulation.simulate.SimConfig")
    assert "defined in sim_core.simulation.config" in problem


def test_the_index_follows_its_format(index):
    assert not index.errors, "lines that break docs/API.md's format:\n" + "\n".join(index.errors)
    assert len(index.entries) >= 50
    assert len(set(index.entries)) == len(index.entries), "an entry is listed twice"


def test_every_listed_name_exists(index):
    problems = [p for p in map(missing, index.entries) if p]
    assert not problems, "docs/API.md lists names the code lacks:\n" + "\n".join(problems)


def test_every_listed_name_is_public(index):
    private = [name for name in index.entries if any(p.startswith("_") and p != "__main__"
                                                     for p in name.split("."))]
    assert not private


def test_every_heading_is_a_package_and_every_sim_core_layer_has_one(index):
    for package in index.packages:
        assert hasattr(importlib.import_module(package), "__path__"), f"{package}: no package"
    layers = {f"sim_core.{d.name}" for d in (ROOT / "sim_core").iterdir()
              if (d / "__init__.py").exists()}
    assert layers - set(index.packages) == set(), "sub-packages without a heading"


# ------------------------------------------------------------------ README.md and docs/*.md


def test_dotted_names_in_the_docs_resolve():
    assert resolves("sim_core.base.metrics.METRICS")
    assert not resolves("sim_core.base.metrics.NO_SUCH")
    bad = [f"{page.relative_to(ROOT)}: {name}" for page in PAGES
           for name in sorted(set(DOTTED.findall(page.read_text(encoding="utf-8"))))
           if not resolves(name)]
    assert not bad, "names in the docs that the code lacks:\n" + "\n".join(bad)


def commands(text: str):
    """Every `python -m sim_core|finetune ...` line of the fenced blocks, continuations joined:
    (program, argv)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    fenced = False
    for line in joined.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced or not re.search(r"-m (sim_core|finetune)\b", line):
            continue
        words = shlex.split(line, comments=True)
        for i, word in enumerate(words[:-1]):
            if word == "-m" and words[i + 1] in ("sim_core", "finetune"):
                yield words[i + 1], words[i + 2:]
                break


def test_cli_examples_in_the_docs_parse(capsys):
    from finetune.cli import build_parser as finetune_parser
    from sim_core.__main__ import build_parser

    parsers = {"sim_core": build_parser(), "finetune": finetune_parser()}
    assert list(commands("```bash\npython -m sim_core marginals \\\n  --data x  # c\n```")) == \
        [("sim_core", ["marginals", "--data", "x"])]
    seen, failed = 0, []
    for page in PAGES:
        for program, argv in commands(page.read_text(encoding="utf-8")):
            seen += 1
            try:
                parsers[program].parse_args(argv)
            except SystemExit:
                failed.append(f"{page.relative_to(ROOT)}: python -m {program} {' '.join(argv)}\n"
                              f"    {capsys.readouterr().err.strip().splitlines()[-1]}")
    assert seen >= 30
    assert not failed, "CLI examples that no longer parse:\n" + "\n".join(failed)


def test_the_score_table_of_method_md_is_the_metrics_registry():
    from sim_core.base.metrics import METRICS
    from sim_core.evaluation.individual_scores import INDIVIDUAL_SCORES

    text = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    for m in METRICS.values():
        formula = m.formula.replace("|", "\\|")       # a table cell escapes its bars
        assert f"| {m.name} | {formula} | {m.direction} | {m.range} |" in text, m.key
    for m in INDIVIDUAL_SCORES.values():
        formula = m.formula.replace("|", "\\|")
        assert f"| {m.name} | {formula} | {m.direction} |" in text, m.key


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_anchors_exist():
    link = re.compile(r"\]\(([^)\s]+)\)")
    broken = []
    for page in PAGES:
        for _, line in prose_lines(page.read_text(encoding="utf-8")):
            for target in link.findall(line):
                if re.match(r"[a-z]+:", target):
                    continue
                path, _, anchor = target.partition("#")
                file = (page.parent / path).resolve() if path else page
                if not file.exists():
                    broken.append(f"{page.name}: {target}")
                elif anchor and file.suffix == ".md":
                    headings = [slug(text.lstrip("#")) for _, text in
                                prose_lines(file.read_text(encoding="utf-8"))
                                if text.startswith("#")]
                    if anchor not in headings:
                        broken.append(f"{page.name}: {target} (no such heading)")
    assert slug("## Calibration, prediction intervals (2026-11-30)".lstrip("#")) == \
        "calibration-prediction-intervals-2026-11-30"
    assert not broken, "broken links:\n" + "\n".join(broken)
