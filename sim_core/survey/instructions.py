"""Interviewer instructions in variable and value labels: found, shown, and a cleaned
wording proposed, never applied silently.

Questionnaires fielded by telephone carry notes for the interviewer in their labels: "(VOL)
Other candidate", "(DO NOT READ) Don't know", "**C1 Suppose ... (INSERT & ROTATE: FORM A:
... FORM B: ...)", "[READ LIST]", "(PROBE ...)", "INTERVIEWER: ...". No respondent heard
them, so the model should not read them either. This module

- finds them (find_markers: the item number "**C1" / "Q5.", "(VOL)", "DO NOT READ", "INSERT",
  "ROTATE", "RANDOMIZE", "FORM A:", "READ LIST", "PROBE", "INTERVIEWER:", and any bracketed
  note written in capitals such as "(RESPONDENT MAY CHOOSE MORE THAN ONE)");
- proposes a cleaned wording and cleaned option labels (propose, survey_proposals): the
  markers removed, with the bracketed note or the run of capitals they stand in;
- says so in a note per column in use (instruction_notes), shown with the validation
  messages and in the codebook.

The researcher accepts or edits the proposal. The exported codebook carries it in the
columns `proposed_question_text` and `proposed_options` (information only, never read back)
beside question_text and options, to copy over or edit; `python -m sim_core codebook
--accept-cleaned-wording` writes the proposals into question_text and options and lists the
columns it changed; the dashboard shows the proposals in an editable table and writes the
accepted ones through the same codebook (sim_core.survey.codebook.reworded_codebook). Until
then the wording is read as the file has it. A label that still holds the wording of several
forms outside brackets ("FORM A: ... FORM B: ...") gets no proposal: only the researcher
knows which wording each respondent heard. Labels that read as nonresponse ("(DO NOT READ)
Don't know") are missing values already (sim_core.survey.nonresponse) and are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sim_core.survey.nonresponse import nonresponse_reason
from sim_core.survey.schema import ColumnNote, ColumnSpec, Survey

_KEYWORDS = re.compile(
    r"\bVOL(UNTEERED)?\b|\bDO NOT READ\b|\bDON'?T READ\b|\bINSERT\b|\bROTATE\b|"
    r"\bRANDOMI[SZ]E\b|\bFORM\s+[A-Z0-9]{1,2}\s*:|\bREAD( (LIST|OPTIONS|CHOICES|CATEGORIES|"
    r"SLOWLY|IN ORDER))?\b|\bPROBE\b|\bINTERVIEWER\b|\bIWER\b|\bSKIP\b|\bASK ALL\b")
_LOWER_KEYWORDS = re.compile(r"\(\s*(vol(unteered)?\.?|do not read|don't read|probe\b[^)]*|"
                             r"read list|interviewer\b[^)]*)\)|\binterviewer\s*:",
                             re.IGNORECASE)
_ITEM_NUMBER = re.compile(r"^\s*(\*+\s*[A-Za-z]{0,4}\d+[A-Za-z]?\b[.:)]?|"
                          r"(Q|QN|QUES)\.?\s*\d+[A-Za-z]?\s*[.:)]|[A-Z]{1,3}\d+[a-z]?[.:)](?=\s))")
_BRACKETED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_UNCLOSED = re.compile(r"[(\[][^)\]]*$")
_CAPS_RUN = re.compile(r"(?:\b[A-Z][A-Z0-9&'/-]*\b[\s:.,;&/-]*)+")
_CAPS_WORDS = re.compile(r"\b[A-Z]{2,}\b")
_FORMS = re.compile(r"\bFORM\s+[A-Z0-9]{1,2}\s*:")


def find_markers(text: str) -> list[str]:
    """The interviewer instructions in a label, as they are written there (in order)."""
    text = str(text or "")
    found = []
    item = _ITEM_NUMBER.match(text)
    if item:
        found.append(item.group(0).strip())
    spans = [(m.start(), m.group(0)) for m in _KEYWORDS.finditer(text)]
    spans += [(m.start(), m.group(0)) for m in _LOWER_KEYWORDS.finditer(text)]
    spans += [(m.start(), m.group(0)) for m in _BRACKETED.finditer(text) if _capitals(m.group(0))]
    for _, marker in sorted(spans):
        if not any(marker in f or f in marker for f in found):
            found.append(marker.strip())
    return found


def _capitals(segment: str) -> bool:
    """A bracketed note written in capitals: two or more words, no lower-case letter."""
    return len(_CAPS_WORDS.findall(segment)) >= 2 and not re.search(r"[a-z]", segment)


def _instruction(segment: str) -> bool:
    return bool(_KEYWORDS.search(segment) or _LOWER_KEYWORDS.search(segment)
                or _capitals(segment))


def clean_text(text: str) -> str | None:
    """The label without its interviewer instructions; None when it cannot be cleaned
    safely (several forms' wordings outside brackets) or nothing would be left."""
    text = str(text or "")
    out = _ITEM_NUMBER.sub("", text, count=1)
    out = _BRACKETED.sub(lambda m: " " if _instruction(m.group(0)) else m.group(0), out)
    out = _UNCLOSED.sub(lambda m: " " if _instruction(m.group(0)) else m.group(0), out)
    if len(_FORMS.findall(out)) >= 2:
        return None
    out = _CAPS_RUN.sub(lambda m: " " if _instruction(m.group(0)) else m.group(0), out)
    out = re.sub(r"\s+", " ", out)
    out = re.sub(r"\s+([?.,;:!])", r"\1", out).strip(" :;,-*/&")
    return out or None


@dataclass(frozen=True)
class Proposal:
    """A cleaned wording for one column, to accept or edit.

    Attributes:
        column: the column.
        text, options: the wording and valid option labels as read.
        cleaned_text, cleaned_options: the proposal (options in the same order, one each).
        markers: the instructions found.
    """

    column: str
    text: str
    options: tuple[str, ...]
    cleaned_text: str
    cleaned_options: tuple[str, ...]
    markers: tuple[str, ...]


def propose(column: str, text: str, options) -> Proposal | None:
    """A Proposal for a column whose wording or valid options hold instructions, else None.

    Options that read as nonresponse are missing values and are not proposed; an option
    that would be empty or the same as another after cleaning keeps its label.
    """
    options = tuple(str(o) for o in options)
    markers = find_markers(text) + [m for o in options if not nonresponse_reason(o)
                                    for m in find_markers(o)]
    if not markers:
        return None
    cleaned = [(clean_text(o) or o) if not nonresponse_reason(o) else o for o in options]
    if len(set(cleaned)) != len(cleaned):
        cleaned = list(options)
    return Proposal(column, str(text), options, clean_text(text) or str(text), tuple(cleaned),
                    tuple(dict.fromkeys(markers)))


def _note(proposal: Proposal) -> ColumnNote:
    """What was found and what is proposed, for the column's note."""
    parts = [f"{proposal.column}: the label holds interviewer instructions "
             f"({', '.join(proposal.markers)}), which no respondent heard"]
    if proposal.cleaned_text != proposal.text:
        parts.append(f"proposed wording: '{proposal.cleaned_text}'")
    elif find_markers(proposal.text):
        parts.append("no wording proposed (it holds several forms' wordings): write the "
                     "wording the respondents heard")
    if proposal.cleaned_options != proposal.options:
        parts.append(f"proposed options: {' | '.join(proposal.cleaned_options)}")
    return ColumnNote(proposal.column, "instructions", "; ".join(parts) + ". Accept or edit "
                      "it in the codebook (columns proposed_question_text, proposed_options; "
                      "or `python -m sim_core codebook --accept-cleaned-wording`).")


def instruction_notes(specs: dict[str, ColumnSpec], columns) -> list[ColumnNote]:
    """A note for each of these columns whose label or option labels hold instructions."""
    found = (propose(c, specs[c].text, specs[c].options) for c in columns if c in specs)
    return [_note(p) for p in found if p is not None]


def survey_proposals(survey: Survey) -> list[Proposal]:
    """A Proposal for every question and demographic whose wording or options hold
    interviewer instructions, as read (the dashboard's accept/edit table)."""
    out = []
    for column, spec in survey.codebook.items():
        if column in survey.questions:
            question = survey.questions[column]
            found = propose(column, question.text, question.options)
        elif column in survey.demographics:
            found = propose(column, spec.text, spec.options)
        else:
            continue
        if found is not None:
            out.append(found)
    return out
