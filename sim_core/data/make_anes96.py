"""Regenerate anes96.csv and anes96_codebook.csv (run once from the repository root:
`.venv/bin/python sim_core/data/make_anes96.py`) from the ANES 1996 subset bundled in
statsmodels, with the code labels of statsmodels.datasets.anes96 (its NOTE)."""
import csv
from pathlib import Path

import pandas as pd
from statsmodels.datasets import anes96

out = Path("sim_core/data")
df = anes96.load_pandas().data
PID = ["Strong Democrat", "Weak Democrat", "Independent-Democrat", "Independent-Independent",
       "Independent-Republican", "Weak Republican", "Strong Republican"]
LR = ["Extremely liberal", "Liberal", "Slightly liberal", "Moderate", "Slightly conservative",
      "Conservative", "Extremely conservative"]
EDUC = ["1-8 grades", "Some high school", "High school graduate", "Some college",
        "College degree", "Master's degree", "PhD"]
INCOME = ["None or less than $2,999", "$3,000-$4,999", "$5,000-$6,999", "$7,000-$8,999",
          "$9,000-$9,999", "$10,000-$10,999", "$11,000-$11,999", "$12,000-$12,999",
          "$13,000-$13,999", "$14,000-$14,999", "$15,000-$16,999", "$17,000-$19,999",
          "$20,000-$21,999", "$22,000-$24,999", "$25,000-$29,999", "$30,000-$34,999",
          "$35,000-$39,999", "$40,000-$44,999", "$45,000-$49,999", "$50,000-$59,999",
          "$60,000-$74,999", "$75,000-$89,999", "$90,000-$104,999", "$105,000 and over"]
VOTE = ["Clinton", "Dole"]
table = pd.DataFrame({
    "age": df["age"].astype(int),
    "educ": [EDUC[int(v) - 1] for v in df["educ"]],
    "income": [INCOME[int(v) - 1] for v in df["income"]],
    "PID": [PID[int(v)] for v in df["PID"]],
    "popul": df["popul"].round(1),
    "TVnews": df["TVnews"].astype(int),
    "selfLR": [LR[int(v) - 1] for v in df["selfLR"]],
    "ClinLR": [LR[int(v) - 1] for v in df["ClinLR"]],
    "DoleLR": [LR[int(v) - 1] for v in df["DoleLR"]],
    "vote": [VOTE[int(v)] for v in df["vote"]],
})
table.to_csv(out / "anes96.csv", index=False)
book = [
    ("educ", "Education level of respondent", EDUC, "true", "demographic"),
    ("income", "Household income", INCOME, "true", "demographic"),
    ("PID", "Party identification of respondent", PID, "true", "demographic"),
    ("TVnews", "How many times per week do you watch the news on TV?",
     [str(i) for i in range(8)], "true", "question"),
    ("selfLR", "Where would you place yourself on a scale from extremely liberal to extremely "
     "conservative?", LR, "true", "question"),
    ("ClinLR", "Where would you place Bill Clinton on a scale from extremely liberal to "
     "extremely conservative?", LR, "true", "question"),
    ("DoleLR", "Where would you place Bob Dole on a scale from extremely liberal to extremely "
     "conservative?", LR, "true", "question"),
    ("vote", "In the 1996 presidential election, whom do you expect to vote for?", VOTE,
     "false", "question"),
]
with open(out / "anes96_codebook.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["column", "question_text", "options", "ordinal", "missing", "role"])
    for col, text, opts, ordinal, role in book:
        w.writerow([col, text, "|".join(opts), ordinal, "", role])
print(f"wrote {len(table)} respondents to {out}")
