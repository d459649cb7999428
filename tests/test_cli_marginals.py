"""`python -m sim_core marginals`: table and JSON output, errors, shared data arguments."""

from __future__ import annotations

import argparse
import json

import pytest

from sim_core.base.errors import DataError
from sim_core.commands import common, marginals

SIX_ROWS = "sex,age,q,w\nF,25,Yes,1\nF,40,No,2\nF,70,Yes,3\nM,22,Yes,1\nM,50,No,1\nM,35,No,2\n"


def cli(argv: list[str]) -> int:
    """Parse with just the marginals subcommand (others may not exist yet) and run it."""
    parser = argparse.ArgumentParser()
    marginals.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def six(tmp_path):
    path = tmp_path / "six.csv"
    path.write_text(SIX_ROWS)
    return path


def test_json_output(six, capsys):
    assert cli(["marginals", "--data", str(six), "--weight", "w", "--question", "q",
                "--by", "sex", "--json", "--total"]) == 0
    out = json.loads(capsys.readouterr().out)
    records = out["marginals"]
    assert [r["slice"] for r in records] == [{}, {"sex": "F"}, {"sex": "M"}]
    # weights 1,2,3,1,1,2: sum 10, Kish deff = 6 * 20 / 10^2 = 1.2, CV = sqrt(0.2)
    weighting = out["weighting"]
    assert weighting["column"] == "w" and weighting["total"] == pytest.approx(10)
    assert weighting["deff"] == pytest.approx(1.2) and weighting["cv"] == pytest.approx(0.2 ** 0.5)
    assert out["intervals"].startswith("weighting only")
    assert all(r["n_total"] == r["n"] and r["nonresponse"] == {} for r in records)
    total, female, male = records
    assert female["options"] == ["No", "Yes"]
    assert female["shares"] == pytest.approx([2 / 6, 4 / 6], abs=1e-6)
    assert female["n"] == 3 and female["n_eff"] == pytest.approx(36 / 14, abs=1e-3)
    assert male["shares"] == pytest.approx([0.75, 0.25]) and male["too_small"] is True
    assert total["n"] == 6 and total["n_eff"] == pytest.approx(5.0)
    assert all(lo <= s <= hi for r in records
               for lo, s, hi in zip(r["ci_low"], r["shares"], r["ci_high"]))


def test_crossed_with_bins_table(six, capsys):
    cli(["marginals", "--data", str(six), "--weight", "w", "--question", "q", "--by",
         "sex,age", "--bins", "age=18,40,120"])
    out = capsys.readouterr().out
    assert out.startswith("weight 'w': sum 10, CV 0.447, Kish design effect 1.200")
    lines = out.splitlines()
    lines = lines[lines.index("q: q"):]
    assert lines[1].split()[:7] == ["slice", "n", "asked", "n_eff", "No", "Yes", "nonresponse"]
    assert lines[3].startswith("sex=F, age=40+ (small)")
    assert "0.400" in lines[3] and "0.600" in lines[3]       # weights 2 (No) and 3 (Yes)


def test_demo_name_and_case_insensitive_by(capsys):
    cli(["marginals", "--data", "gss2022", "--question", "nataid", "--by", "sex", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["weighting"] is None and out["population"] == "adults in the United States"
    records = out["marginals"]
    assert [r["slice"] for r in records] == [{"SEX": "Male"}, {"SEX": "Female"}]
    assert records[0]["n"] is None and records[0]["options"] == ["Too little", "About right",
                                                                 "Too much"]
    assert sum(records[0]["shares"]) == pytest.approx(1.0)


@pytest.mark.parametrize("argv, match", [
    (["--data", "missing.csv", "--question", "q"], "no such file"),
    (["--data", "{six}", "--question", "nope"], "unknown question"),
    (["--data", "{six}", "--question", "q", "--by", "colour"], "unknown attribute"),
    (["--data", "{six}", "--question", "q", "--bins", "age=40,18"], "increasing"),
])
def test_errors_are_data_errors(six, argv, match):
    argv = [a.replace("{six}", str(six)) for a in argv]
    with pytest.raises(DataError, match=match):
        cli(["marginals", *argv])


def test_shared_args_let_a_subcommand_redefine_json():
    parser = argparse.ArgumentParser()
    common.add_data_args(parser)
    parser.add_argument("--json", default=None, help="a file, as in `report`")
    args = parser.parse_args(["--data", "anes96", "--json", "out.json", "--by", "PID, age"])
    assert args.json == "out.json"
    assert common.by_from_args(args) == ["PID", "age"]
    assert common.bins_from_args(parser.parse_args(["--data", "x"])) is None


def test_dispatcher_exit_status(six, capsys):
    main = pytest.importorskip("sim_core.__main__")
    try:
        status = main.main(["marginals", "--data", str(six), "--question", "nope"])
    except ModuleNotFoundError as error:         # another subcommand not written yet
        pytest.skip(f"dispatcher needs {error.name}")
    assert status == 2 and "unknown question" in capsys.readouterr().err


def test_spss_file_json_has_nonresponse_weighting_and_warnings(tmp_path, capsys):
    from tests.test_survey_files import write_survey

    path = write_survey(tmp_path)
    cli(["marginals", "--data", str(path), "--weight", "wt", "--demographics", "sex",
         "--question", "q1", "--by", "sex", "--json", "--population", "adults in Ohio"])
    captured = capsys.readouterr()
    out = json.loads(captured.out)                       # stays valid JSON
    assert out["population"] == "adults in Ohio" and out["weighting"]["total"] == 17
    # q1's missing codes are declared: the notes about q2, q3, c2 are only counted
    assert out["warnings"] == [f"3 notes about other columns: see the codebook (`python -m "
                               f"sim_core codebook --data {path}`, its notes column)"]
    assert captured.err.splitlines() == [f"warning: {w}" for w in out["warnings"]]
    male, female = out["marginals"]
    assert male["nonresponse"] == {"dk": 0.125, "refused": 0.125}
    assert (female["n"], female["n_asked"], female["n_total"]) == (4, 5, 6)
    cli(["marginals", "--data", str(path), "--weight", "wt", "--demographics", "sex",
         "--question", "q2", "--json"])
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert len(warnings) == 2 and warnings[0].startswith("q2: 'Don\u2019t know (DO NOT READ)' "
                                                         "(2) counted as nonresponse")
    assert warnings[1].startswith("2 notes about other columns")
    assert female["nonresponse"] == pytest.approx({"dk": 2 / 9, "not_asked": 1 / 9}, abs=1e-6)


def test_unread_column_named_as_question_gets_a_hint(tmp_path):
    from tests.test_survey_files import write_survey

    path = write_survey(tmp_path)
    with pytest.raises(DataError, match="name it with --questions"):
        cli(["marginals", "--data", str(path), "--question", "areacode", "--unweighted"])


def test_codebook_command_writes_once_and_reimports(tmp_path, capsys):
    from sim_core.commands import codebook
    from tests.test_survey_files import write_survey

    path = write_survey(tmp_path)
    parser = argparse.ArgumentParser()
    codebook.register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "book.csv"
    argv = ["codebook", "--data", str(path), "--weight", "wt", "--demographics", "sex",
            "--out", str(out)]
    args = parser.parse_args(argv)
    assert args.func(args) == 0 and out.read_text().startswith("column,question_text")
    from sim_core.base.errors import SimError
    with pytest.raises(SimError, match="exists"):
        args.func(parser.parse_args(argv))
    cli(["marginals", "--data", str(path), "--codebook", str(out), "--weight", "wt",
         "--question", "q1", "--json"])
    record = json.loads(capsys.readouterr().out)["marginals"][0]
    assert record["shares"] == pytest.approx([4 / 12, 5 / 12, 3 / 12], abs=1e-6)


def test_surveys_save_keeps_reader_options(tmp_path, capsys):
    """`surveys save` stores the roles, weight and population chosen; `--data NAME` reads
    the saved survey back with them."""
    from sim_core.commands import surveys
    from tests.test_survey_files import write_survey

    path = write_survey(tmp_path)
    parser = argparse.ArgumentParser()
    surveys.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["surveys", "save", "--data", str(path), "--name", "phone-2004",
                              "--weight", "wt", "--demographics", "sex",
                              "--population", "adults in Ohio (2004)"])
    assert args.func(args) == 0
    assert "saved 'phone-2004'" in capsys.readouterr().out
    cli(["marginals", "--data", "phone-2004", "--question", "q1", "--by", "sex", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["population"] == "adults in Ohio (2004)" and out["weighting"]["column"] == "wt"
    assert out["marginals"][0]["nonresponse"] == {"dk": 0.125, "refused": 0.125}
