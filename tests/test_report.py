"""Reports: the Report data object, PDF (fpdf2), CSV and JSON exports.

Stress cases (50 slices, long labels, non-ASCII text, formula cells) use hand-built Report
objects; the end-to-end tests go through the real sim_core.evaluation.compare.compare with the tiny
model.
"""

from __future__ import annotations

import io
import json
import math
import re

import pandas as pd
import pytest
from pypdf import PdfReader

from sim_core.base.errors import SimError
from sim_core.report.document import QuestionReport, Report, ScoreInfo, SliceResult
from sim_core.report.exports import report_csv, report_from_json, report_json
from sim_core.report.methods_text import methods_text
from sim_core.report.pdf import render_pdf
from sim_core.report.pdf_kit import format_score

CKPT = "SmolLM2-135M-Instruct + my-adapter"
SCORES = [ScoreInfo("kl", "KL divergence", "sum p_i ln(p_i / q_i)", "lower", "[0, inf)"),
          ScoreInfo("tv", "total variation", "1/2 sum |p_i - q_i|", "lower", "[0, 1]"),
          ScoreInfo("cosine", "cosine", "p.q / (|p| |q|)", "higher", "[0, 1]")]


def _tv(p, q):
    return 0.5 * sum(abs(a - b) for a, b in zip(p, q))


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


def _cos(p, q):
    dot = sum(a * b for a, b in zip(p, q))
    return dot / math.sqrt(sum(a * a for a in p) * sum(b * b for b in q))


def _slice(label: str, real: list[float], sim: list[float]) -> SliceResult:
    """A slice with a checkpoint and a uniform baseline, scores computed here by hand."""
    k = len(real)
    uniform = [1 / k] * k
    entries = {CKPT: sim, "baseline: uniform": uniform}
    return SliceResult(
        label=label, n_eff=250.0, real=real,
        ci_low=[max(v - 0.05, 0) for v in real], ci_high=[min(v + 0.05, 1) for v in real],
        shares=entries,
        scores={e: {"kl": _kl(real, q), "tv": _tv(real, q), "cosine": _cos(real, q)}
                for e, q in entries.items()},
        noise_floor={"kl": 0.004, "tv": 0.03, "cosine": 0.999})


def _report(questions: list[QuestionReport], title="Test report") -> Report:
    report = Report(title=title, created="2025-03-01", survey="test-survey", wave="2022",
                    checkpoints=[{"label": CKPT, "name": "default", "adapter": "my-adapter",
                                  "fingerprint": "0123abcd", "card": {"rank": 8}}],
                    baselines=["uniform"], mode="first-token", orders=2, scores=SCORES,
                    questions=questions)
    report.methods = methods_text(report)
    return report


def _question(qid: str, text: str, labels: list[str], options=("Agree", "Neutral", "Disagree")):
    real = [0.5, 0.3, 0.2][:len(options)]
    sim = [0.4, 0.35, 0.25][:len(options)]
    return QuestionReport(id=qid, text=text, options=list(options), by=["REGION"],
                          slices=[_slice(label, real, sim) for label in labels],
                          example_prompt="Persona: You live in the North.\nAnswer:")


def _pdf_text(data: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(data))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def _squash(text: str) -> str:
    """Text without any whitespace: wrapped cells compare equal to their source."""
    return re.sub(r"\s+", "", text)


def test_pdf_pages_and_text_of_a_known_report():
    labels = ["REGION=North", "REGION=South", "REGION=East"]
    report = _report([_question("Q1", "Should the city build more bike lanes?", labels),
                      _question("Q2", "Do you trust the national parliament?", labels)])
    reader, text = _pdf_text(render_pdf(report))
    # title page + one page per question (each fits) + methods page
    assert len(reader.pages) == 4
    assert "Page 4 / 4" in text
    wordings = ("Should the city build more bike lanes?", "Do you trust the national parliament?")
    for wording in wordings:
        assert wording in text
    for label in labels:
        assert text.count(label) == 2  # once per question in the slice table (charts are images)
    # hand-computed scores as the table prints them; the checkpoint beats uniform on all three
    real, sim = [0.5, 0.3, 0.2], [0.4, 0.35, 0.25]
    for value in (_kl(real, sim), _tv(real, sim), _cos(real, sim)):
        assert f"{format_score(value)} ★" in text
    assert format_score(_tv(real, [1 / 3] * 3)) == "0.167"
    assert "0.167" in text and "0.167 ★" not in text
    assert "KL divergence ↓" in text and "cosine ↑" in text
    assert "noise floor" in text and "0.004" in text
    assert "Persona: You live in the North." in text  # example prompt on the methods page


def test_format_score():
    assert format_score(0.123456) == "0.123"
    assert format_score(12.5) == "12.500"
    assert format_score(0.0) == "0.000"
    assert format_score(3.2e-05) == "3.20e-05"
    assert format_score(float("nan")) == "–"
    assert format_score(None) == "–"


def _text_positions(reader: PdfReader) -> list[tuple[int, float, float, str]]:
    """(page, x, y, text) of every text fragment drawn."""
    found = []
    for number, page in enumerate(reader.pages):
        def visit(text, cm, tm, font, size, number=number):
            if text.strip():
                found.append((number, cm[4] + tm[4] * cm[0], cm[5] + tm[5] * cm[3], text))
        page.extract_text(visitor_text=visit)
    return found


def test_fifty_slices_with_long_labels_all_present_and_on_the_page():
    labels = [f"OCCUPATION=Occupation group number {i} with a rather long descriptive name"
              for i in range(50)]
    labels[7] = "CODE=" + "X" * 120  # one unbreakable token, wider than its column
    report = _report([_question("Q1", "How satisfied are you with your job?", labels)])
    data = render_pdf(report)
    reader, text = _pdf_text(data)
    flat = _squash(text)
    for label in labels:
        assert _squash(label) in flat, label
    # 50 slices -> 5 charts of at most 12 slices
    assert sum(len(page.images) for page in reader.pages) == 5
    width, height = float(reader.pages[0].mediabox.width), float(reader.pages[0].mediabox.height)
    positions = _text_positions(reader)
    assert positions
    for _, x, y, fragment in positions:
        assert 0 <= x < width - 20 and 0 <= y <= height, (x, y, fragment)
    # every page is numbered in the footer
    for number in range(1, len(reader.pages) + 1):
        assert f"Page {number} / {len(reader.pages)}" in text


def test_non_ascii_wording_renders():
    wording = "Как вы оцениваете работу правительства? Êtes-vous satisfait? Ελλάδα"
    options = ("Très bien", "Плохо", "Άλλο")
    report = _report([_question("Q1", wording, ["RÉGION=Île-de-France", "ОБЛАСТЬ=Москва"],
                                options=options)], title="Rapport d'enquête – Отчёт")
    _, text = _pdf_text(render_pdf(report))
    for piece in (wording, "Très bien", "Плохо", "Άλλο", "RÉGION=Île-de-France",
                  "ОБЛАСТЬ=Москва", "Rapport d'enquête – Отчёт"):
        assert piece in text


@pytest.mark.parametrize("size, points", [("A4", (595.28, 841.89)), ("Letter", (612, 792)),
                                          ("letter", (612, 792))])
def test_page_sizes(size, points):
    report = _report([_question("Q1", "Wording", ["REGION=North"])])
    reader, _ = _pdf_text(render_pdf(report, page_size=size))
    for page in reader.pages:
        assert float(page.mediabox.width) == pytest.approx(points[0], abs=0.01)
        assert float(page.mediabox.height) == pytest.approx(points[1], abs=0.01)


def test_unknown_page_size_is_a_clear_error():
    report = _report([_question("Q1", "Wording", ["REGION=North"])])
    with pytest.raises(SimError, match="A4 or Letter"):
        render_pdf(report, page_size="A3")


def _read_csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])


def test_csv_round_trips_and_neutralises_formulas():
    wording = '=HYPERLINK("http://evil.example","click")'
    question = _question("Q1", wording, ["REGION=North", "@SUM(A1)"],
                         options=("None", "-1 refused", "+ more"))
    question.slices[0].scores[CKPT]["kl"] = -0.25  # a real negative number stays numeric
    report = _report([question])
    df = _read_csv(report_csv(report))

    texts = df[df.table == "question"]
    assert list(texts.text) == ["'" + wording] * 3
    assert list(texts.option) == ["None", "'-1 refused", "'+ more"]
    assert list(texts.value) == [0, 1, 2]

    shares = df[df.table == "shares"]
    for s in question.slices:
        for entry, values in [("real", s.real)] + list(s.shares.items()):
            rows = shares[(shares.slice == ("'" + s.label if s.label.startswith("@") else s.label))
                          & (shares.entry == entry)]
            assert list(rows.share) == pytest.approx(values, abs=0)
        real = shares[(shares.entry == "real") & (shares.slice == "REGION=North")]
        assert list(real.ci_low) == pytest.approx(question.slices[0].ci_low, abs=0)
        assert list(real.ci_high) == pytest.approx(question.slices[0].ci_high, abs=0)
        assert set(real.n_eff) == {250.0}
    assert shares[shares.entry != "real"].ci_low.isna().all()

    scores = df[df.table == "scores"]
    assert scores.value.dtype == float
    north_ckpt = (scores.slice == "REGION=North") & (scores.entry == CKPT)
    kl = scores[north_ckpt & (scores.score == "kl")]
    assert list(kl.value) == [-0.25] and list(kl.direction) == ["lower"]
    cos = scores[north_ckpt & (scores.score == "cosine")]
    assert list(cos.value) == [question.slices[0].scores[CKPT]["cosine"]]
    floor = scores[(scores.entry == "noise floor") & (scores.score == "tv")]
    assert list(floor.value) == [0.03, 0.03]
    # nothing starts a cell with a formula character any more
    for column in df.select_dtypes(include="object"):
        assert not df[column].dropna().astype(str).str.match(r"^[=+\-@\t\r]").any(), column


def test_json_round_trips():
    labels = ["REGION=Nord", "REGION=Süd"]
    report = _report([_question("Q1", "Soll die Stadt mehr Radwege bauen?", labels)])
    text = report_json(report)
    assert "Süd" in text  # written as UTF-8, not \u escapes
    assert report_from_json(text) == report
    data = json.loads(text)
    assert data["questions"][0]["slices"][1]["scores"][CKPT]["tv"] == pytest.approx(
        _tv([0.5, 0.3, 0.2], [0.4, 0.35, 0.25]))
    assert data["scores"][0] == {"key": "kl", "name": "KL divergence",
                                 "formula": "sum p_i ln(p_i / q_i)", "direction": "lower",
                                 "range": "[0, inf)"}


def test_json_has_no_nan():
    report = _report([_question("Q1", "Wording", ["REGION=North"])])
    report.questions[0].slices[0].scores[CKPT]["kl"] = float("nan")

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    data = json.loads(report_json(report), parse_constant=refuse)
    assert data["questions"][0]["slices"][0]["scores"][CKPT]["kl"] is None


def test_drafted_question_without_real_data():
    question = _question("D1", "A drafted question nobody has asked yet?", ["AGE=18-29"])
    for s in question.slices:
        s.real = s.ci_low = s.ci_high = s.n_eff = None
        s.scores, s.noise_floor = {}, {}
    report = _report([question])
    _, text = _pdf_text(render_pdf(report))
    assert "A drafted question nobody has asked yet?" in text
    assert "no scores" in text
    df = _read_csv(report_csv(report))
    assert "real" not in set(df.entry.dropna())
    assert (df.table == "scores").sum() == 0


def _evaluation_report() -> Report:
    from sim_core.report.document import EvaluationReport, Heatmap, Table
    questions = [f"Q{i}" for i in range(45)]       # more than one heatmap chunk (40 rows)
    slices = [f"GROUP=g{j}" for j in range(22)]
    values = [[(i + j) / 100 for j in range(22)] for i in range(45)]
    rows = [[q, s, CKPT, values[i][j], values[i][j] / 2] for i, q in enumerate(questions)
            for j, s in enumerate(slices)]
    part = EvaluationReport(
        entries=[CKPT, "baseline: uniform"], score="tv",
        summary=Table(["entry", "kl", "tv"],
                      [[CKPT, 0.4321, 0.2], ["baseline: uniform", 0.9, 0.35]]),
        heatmaps=[Heatmap(CKPT, "tv", questions, slices, values)],
        worst={CKPT: Table(["slice", "tv", "questions"], [["GROUP=g21", 0.43, 45]])},
        rows=Table(["question_id", "slice", "entry", "tv", "kl"], rows))
    report = Report(title="Evaluation: test", created="2025-03-01", survey="test", wave=None,
                    checkpoints=[{"label": CKPT}], baselines=["uniform"], mode="first-token",
                    orders=1, scores=SCORES[:2], evaluation=part)
    report.methods = methods_text(report)
    return report


def test_evaluation_report_pdf_csv_json():
    report = _evaluation_report()
    reader, text = _pdf_text(render_pdf(report, page_size="Letter"))
    assert "0.432 ★" in text and "0.200 ★" in text and "0.900" in text
    assert "Worst-represented groups" in text and "GROUP=g21" in text
    # 45 questions x 22 slices: two heatmap chunks (40 + 5 questions)
    assert sum(len(page.images) for page in reader.pages) == 2
    df = _read_csv(report_csv(report))
    summary = df[df.table == "eval_summary"]
    assert summary[(summary.entry == CKPT) & (summary.score == "kl")].value.item() == 0.4321
    scores = df[(df.table == "eval_scores") & (df.score == "tv")]
    assert len(scores) == 45 * 22
    assert scores[(scores.question_id == "Q3") & (scores.slice == "GROUP=g4")].value.item() == 0.07
    assert report_from_json(report_json(report)) == report


# ---------------------------------------------------------------- through the real pipeline

WORDING = "Do you agree that cities should build more bike lanes?"
OPTIONS = ("Agree", "Neutral", "Disagree")
# sex=F: 12/6/6 -> 0.5/0.25/0.25 ; sex=M: 4/4/8 -> 0.25/0.25/0.5
ANSWERS = {"F": ["Agree"] * 12 + ["Neutral"] * 6 + ["Disagree"] * 6,
           "M": ["Agree"] * 4 + ["Neutral"] * 4 + ["Disagree"] * 8}
EXPECTED = {"F": [0.5, 0.25, 0.25], "M": [0.25, 0.25, 0.5]}


@pytest.fixture
def mini_files(tmp_path):
    """A respondent CSV (40 people) and its codebook."""
    lines = ["sex,q1"] + [f"{sex},{answer}" for sex, answers in ANSWERS.items()
                          for answer in answers]
    data = tmp_path / "mini.csv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    codebook = tmp_path / "codebook.csv"
    codebook.write_text("column,question_text,options,ordinal,missing\n"
                        f'q1,"{WORDING}",{"|".join(OPTIONS)},true,\n', encoding="utf-8")
    return data, codebook


def _tiny_model(request, *modules: str):
    """The tiny model, once the modules a test needs exist (skip, not error, before)."""
    for module in ("sim_core.simulation.models", "sim_core.survey.readers") + modules:
        pytest.importorskip(module)
    return request.getfixturevalue("tiny_model_dir")


def _real_comparison(request, mini_files):
    tiny_model_dir = _tiny_model(request, "sim_core.evaluation.compare")
    import sim_core.evaluation.compare as compare
    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.models import load_model
    from sim_core.survey.readers import load_survey
    survey = load_survey(mini_files[0], codebook=mini_files[1])
    model = load_model(str(tiny_model_dir))
    config = SimConfig(orders=2, use_cache=False)
    return compare.compare([model], survey.questions["q1"], survey=survey, by=["sex"],
                           config=config), model, survey


def test_report_from_real_comparison(request, mini_files):
    comparison, model, _ = _real_comparison(request, mini_files)
    from sim_core.report.document import report_from_comparisons
    from sim_core.survey.marginal import slice_label
    report = report_from_comparisons([comparison])
    question = report.questions[0]
    assert (question.id, question.text, question.options) == ("q1", WORDING, list(OPTIONS))
    assert report.mode == "first-token" and report.orders == 2
    assert [c["label"] for c in report.checkpoints] == [model.label]
    assert {"kl", "tv"} <= {s.key for s in report.scores}
    assert {s.key: s.direction for s in report.scores}["cosine"] == "higher"
    slices = {s.label: s for s in question.slices}
    for sex, expected in EXPECTED.items():
        s = slices[slice_label({"sex": sex})]
        assert s.real == pytest.approx(expected)
        assert s.n_eff == pytest.approx(len(ANSWERS[sex]))
        assert all(lo <= p <= hi for lo, p, hi in zip(s.ci_low, s.real, s.ci_high))
        sim = s.shares[model.label]
        assert sum(sim) == pytest.approx(1) and len(sim) == 3
        assert s.shares["baseline: uniform"] == pytest.approx([1 / 3] * 3)
        assert s.scores[model.label]["tv"] == pytest.approx(_tv(expected, sim), abs=1e-9)
        assert s.scores[model.label]["kl"] == pytest.approx(_kl(expected, sim), rel=1e-4)
        assert s.scores["baseline: uniform"]["tv"] == pytest.approx(_tv(expected, [1 / 3] * 3))
    assert question.example_prompt and WORDING in question.example_prompt

    reader, text = _pdf_text(render_pdf(report))
    pages = len(reader.pages)  # title, the question (9 scores: tables in two parts), methods
    assert pages >= 3 and f"Page {pages} / {pages}" in text
    assert WORDING in text and "sex=F" in text and "sex=M" in text
    female = slices[slice_label({"sex": "F"})]
    assert format_score(female.scores[model.label]["tv"]) in text
    df = _read_csv(report_csv(report))
    real = df[(df.table == "shares") & (df.entry == "real") & (df.slice == "sex=F")]
    assert list(real.share) == pytest.approx(EXPECTED["F"])
    assert report_from_json(report_json(report)) == report


def test_report_from_real_evaluation(request, mini_files):
    tiny_model_dir = _tiny_model(request, "sim_core.evaluation.evaluate", "sim_core.survey.slices")
    import sim_core.evaluation.evaluate as evaluate
    from sim_core.report.document import report_from_evaluation
    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.models import load_model
    from sim_core.survey.readers import load_survey
    from sim_core.survey.slices import survey_rows
    survey = load_survey(mini_files[0], codebook=mini_files[1])
    model = load_model(str(tiny_model_dir))
    result = evaluate.evaluate_rows([model], survey_rows(survey, by=["sex"]),
                                    config=SimConfig(orders=1, use_cache=False))
    report = report_from_evaluation(result)
    part = report.evaluation
    summary = {row[0]: dict(zip(part.summary.columns[1:], row[1:])) for row in part.summary.rows}
    rows = result.rows[result.rows.entry == model.label]
    assert summary[model.label]["tv"] == pytest.approx(rows.tv.mean())
    assert [h.entry for h in part.heatmaps] == [model.label]
    assert part.heatmaps[0].questions == ["q1"]
    _, text = _pdf_text(render_pdf(report))
    assert "Worst-represented groups" in text and "sex=F" in text


def _cli(argv: list[str]):
    """Parse and run `report` alone (the other subcommands need not be importable)."""
    import argparse

    from sim_core.commands import report as command
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report"] + argv)
    return args.func(args)


def test_cli_writes_pdf_csv_json(request, mini_files, tmp_path):
    tiny_model_dir = _tiny_model(request, "sim_core.commands.common", "sim_core.evaluation.compare")
    out = tmp_path / "out"
    argv = ["--data", str(mini_files[0]), "--codebook", str(mini_files[1]),
            "--question", "q1", "--by", "sex", "--model", str(tiny_model_dir), "--orders", "1",
            "--pdf", str(out / "r.pdf"), "--csv", str(out / "r.csv"),
            "--json", str(out / "r.json"), "--page-size", "Letter"]
    assert _cli(argv) == 0
    reader, text = _pdf_text((out / "r.pdf").read_bytes())
    assert WORDING in text and float(reader.pages[0].mediabox.width) == pytest.approx(612)
    df = _read_csv((out / "r.csv").read_text(encoding="utf-8"))
    assert list(df[(df.entry == "real") & (df.slice == "sex=M")].share) == pytest.approx(
        EXPECTED["M"])
    report = report_from_json((out / "r.json").read_text(encoding="utf-8"))
    assert report.questions[0].id == "q1" and report.orders == 1
    assert sorted(p.name for p in out.iterdir()) == ["r.csv", "r.json", "r.pdf"]


def test_cli_unknown_question_is_a_clear_error(request, mini_files, tmp_path):
    tiny_model_dir = _tiny_model(request, "sim_core.commands.common", "sim_core.evaluation.compare")
    pdf = tmp_path / "r.pdf"
    argv = ["--data", str(mini_files[0]), "--codebook", str(mini_files[1]),
            "--question", "q1,nope", "--by", "sex", "--model", str(tiny_model_dir),
            "--pdf", str(pdf)]
    with pytest.raises(SimError, match=r"unknown question\(s\) nope"):
        _cli(argv)
    assert not pdf.exists()


def test_orders_sentence_per_checkpoint():
    """Methods text names the option orders: one number, or each checkpoint's own."""
    from types import SimpleNamespace

    from sim_core.report.methods_text import orders_sentence

    one = SimpleNamespace(orders=1, checkpoints=[])
    assert orders_sentence(one) == "the original option order only"
    same = SimpleNamespace(orders=0, checkpoints=[{"label": "base", "orders": 2}])
    assert orders_sentence(same).startswith("2 option orders (original, reversed")
    mixed = SimpleNamespace(orders=0, checkpoints=[{"label": "base", "orders": 2},
                                                   {"label": "base + a", "orders": 1}])
    text = orders_sentence(mixed)
    assert "base: 2 option orders" in text and "base + a: the original option order only" in text
    assert orders_sentence(SimpleNamespace(orders=0, checkpoints=[{"label": "x"}])) == \
        "each checkpoint's own number of option orders"


def test_report_carries_nonresponse_weighting_and_intervals(request, tmp_path):
    """An SPSS survey with declared and undeclared nonresponse: counts and nonresponse
    shares reach the CSV, the JSON and the PDF; the methods say how intervals were made."""
    tiny_model_dir = _tiny_model(request, "sim_core.evaluation.compare")
    from sim_core.evaluation.compare import compare
    from sim_core.report.document import report_from_comparisons
    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.models import load_model
    from sim_core.survey.readers import load_survey
    from tests.test_survey_files import write_survey

    survey = load_survey(write_survey(tmp_path), weight="wt", demographics=["sex"],
                         population="adults in Ohio (2004)")
    comparison = compare([load_model(str(tiny_model_dir))], survey.questions["q1"],
                         survey=survey, by=["sex"], config=SimConfig(orders=1, use_cache=False))
    report = report_from_comparisons([comparison])
    male = report.questions[0].slices[0]
    assert (male.label, male.n, male.n_asked, male.n_total) == ("sex=Male", 4, 6, 6)
    assert male.nonresponse == {"dk": 0.125, "refused": 0.125}
    assert report.population == "adults in Ohio (2004)"
    assert report.weighting.startswith("weight 'wt': sum 17")
    assert "weighting only" in report.methods and "adults in Ohio" in report.methods
    df = _read_csv(report_csv(report))
    rows = df[(df.table == "nonresponse") & (df.slice == "sex=Female")].set_index("option")
    assert rows.loc["dk", "share"] == pytest.approx(2 / 9)
    assert rows.loc["not_asked", "share"] == pytest.approx(1 / 9)
    counts = df[(df.table == "counts") & (df.slice == "sex=Female")].set_index("score")
    assert counts.loc["n_asked", "value"] == 5 and counts.loc["n_total", "value"] == 6
    assert report_from_json(report_json(report)) == report
    _, text = _pdf_text(render_pdf(report))
    assert "Nonresponse: weighted shares" in text and "22.2 %" in text   # women's DK
    assert "adults in Ohio (2004)" in text


def test_intervals_and_verdicts_in_csv_json_and_pdf():
    """A calibrated checkpoint's prediction intervals go to the CSV (pi_low/pi_high), the
    JSON round trip and the PDF legend; each checkpoint's verdict to the title page and CSV."""
    question = _question("Q1", "Bike lanes?", ["REGION=North"])
    question.slices[0].intervals = {CKPT: [[0.2, 0.15, 0.05], [0.6, 0.55, 0.45]]}
    report = _report([question])
    verdict = (f"{CKPT}: On 27 unseen questions of gss (594 rows) this adapter, calibrated, "
               "is no better than a uniform guess (WD 0.190 vs 0.190, 95 % CI of the "
               "difference -0.008..+0.007).")
    report.checkpoints[0].update(calibrated=True, verdict=verdict)
    report.interval_level = 0.8
    report.methods = methods_text(report)
    table = pd.read_csv(io.StringIO(report_csv(report)), keep_default_na=False, na_values=[""])
    mine = table[(table["table"] == "shares") & (table["entry"] == CKPT)]
    assert list(mine["pi_low"]) == [0.2, 0.15, 0.05] and list(mine["pi_high"]) == [0.6, 0.55,
                                                                                     0.45]
    assert table[(table["table"] == "shares") & (table["entry"] == "real")]["pi_low"].isna().all()
    assert table[table["table"] == "verdict"]["text"].tolist() == [verdict]
    again = report_from_json(report_json(report))
    assert again.questions[0].slices[0].intervals == question.slices[0].intervals
    assert again.interval_level == 0.8
    _, text = _pdf_text(render_pdf(report))
    assert "How far to trust these simulations" in text
    assert _squash("no better than a uniform guess (WD 0.190 vs 0.190") in _squash(text)
    assert _squash("Prediction intervals (80 %) are split conformal") in _squash(text)
    assert "Calibrated here: " + CKPT in text.replace("\n", " ")


def test_old_reports_without_intervals_still_load():
    report = _report([_question("Q1", "Bike lanes?", ["REGION=North"])])
    data = json.loads(report_json(report))
    data.pop("interval_level")
    for q in data["questions"]:
        for s in q["slices"]:
            s.pop("intervals")
    again = report_from_json(json.dumps(data))
    assert again.interval_level is None and again.questions[0].slices[0].intervals == {}
    render_pdf(again)


def test_chinese_text_reaches_the_pdf_or_the_render_says_why(monkeypatch):
    """A Chinese survey's wording, options and slices are drawn with the CJK fallback font
    (text extracted back from the PDF); without any CJK font the render refuses with one
    message instead of dropping the characters."""
    from sim_core.report import pdf_kit

    if pdf_kit.cjk_font_file() is None:
        pytest.skip("no CJK font installed (make install adds fonts-wqy-microhei)")
    question = _question("Q1", "你同意政府应该增加公共交通投资吗？", ["地区=北方", "地区=南方"],
                         options=("非常同意", "同意", "不同意"))
    _, text = _pdf_text(render_pdf(_report([question], title="中国综合社会调查")))
    for part in ("中国综合社会调查", "你同意政府应该增加公共交通投资吗？", "地区=北方",
                 "非常同意"):
        assert _squash(part) in _squash(text), part
    monkeypatch.setattr(pdf_kit, "CJK_FONT_FILES", ())
    with pytest.raises(SimError, match="cannot draw some characters"):
        render_pdf(_report([question]))
