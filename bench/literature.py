"""The literature beside the ledger: for the parts of a claim that a published result speaks to,
what was published, the verdict it corresponds to, and whether this run agrees. Only results
read in the source are here; docs/literature.md gives each citation with its table or figure,
and lists what is still to be checked. Where a run disagrees, the report shows what differs
between the published setting and ours; it never tunes an experiment towards agreement."""
import re
from dataclasses import dataclass

import pandas as pd

from . import stats


@dataclass(frozen=True)
class Finding:
    claim: str  # S1 ... S7
    part: str  # a regular expression on the parts' keys (claims: each part's key)
    cite: str  # short; docs/literature.md has the table or figure
    result: str  # what was published, with its numbers
    expects: str  # the verdict of the part the published result corresponds to
    differs: str  # what differs from our setting, which might explain a disagreement


FINDINGS = [
    Finding("S1", r"- rnn score|solved at the longest both ran",
            "Hochreiter & Schmidhuber 1997, Tables 2 and 7",
            "LSTM solved the adding problem at T = 100, 500 and 1000 (74,000, 209,000 and 853,000 training "
            "sequences, 10 trials); RTRL and BPTT nets solved no trial of a 100-step lag in 5 million (task 2a)",
            stats.SUPPORTED,
            "their LSTM had no forget gate, 93 weights, online gradient descent at lr 0.5 and up to millions of "
            "sequences; their adding target is scaled and its first marker lies in the first 10 steps"),
    Finding("S4", r"adding: gru - lstm",
            "Chung et al. 2014 (abstract)",
            "the GRU comparable to the LSTM on polyphonic music and speech at about equal parameter counts",
            stats.SUPPORTED,
            "real sequences (music, speech) scored by log-likelihood, not a synthetic long-lag task"),
    Finding("S4", r"jsb: gru - lstm$",
            "Chung et al. 2014, Table 2 (as transcribed; docs/literature.md)",
            "on JSB Chorales, test NLL per step: GRU 8.54, LSTM 8.67, tanh RNN 9.10 (about 20,000 parameters "
            "each: 46, 36 and 100 units); the GRU comparable to the LSTM",
            stats.SUPPORTED,
            "the published JSB Chorales (382 chorales, their split); RMSProp with weight noise and early stopping, "
            "the rate best of 10 drawn on validation; here music21's 347 chorales, Adam, a fixed budget, a "
            "three-point rate grid"),
    Finding("S4", r"counting: gru - lstm",
            "Weiss, Goldberg & Yahav 2018 (abstract)",
            "the LSTM learns to count (a^n b^n far beyond the training n); the GRU does not",
            stats.NOT_SUPPORTED,
            "they train on n < 100 and test far beyond it; we train on n <= 10 at hidden size 32 and test to 4 n_max"),
    Finding("S4", r"adding: gru - lstm_fb1$",
            "Jozefowicz, Zaremba & Sutskever 2015 (abstract)",
            "a forget-gate bias of 1 closes the gap between the LSTM and the GRU",
            stats.SUPPORTED,
            "an architecture search over ten thousand architectures on other tasks, each with its own "
            "hyperparameter search; here synthetic long-lag tasks at one size and a three-point learning-rate grid"),
    Finding("S6", r"cifg lstm",
            "Greff et al. 2017 (conclusions)",
            "coupling the input and forget gates (CIFG) did not significantly hurt on TIMIT, IAM Online or JSB",
            stats.SUPPORTED,
            "speech, handwriting and music with each variant's hyperparameters found by random search"),
    Finding("S7", r"lstm\S* without forget_gate",
            "Greff et al. 2017 (conclusions)",
            "the forget gate is a critical component: removing it (NFG) hurt significantly",
            stats.SUPPORTED,
            "speech, handwriting and music; peephole LSTMs; each variant tuned by random search"),
]


@dataclass(frozen=True)
class Published:
    """A published table of each cell's result on one of our tasks."""
    task: str
    metric: str  # our metric that it reports
    cite: str
    cells: dict  # family -> (units, value)
    differs: str


PUBLISHED = [
    Published("jsb", "nll", "Chung et al. 2014, Table 2, test (as transcribed: docs/literature.md)",
              {"rnn": (100, 9.10), "gru": (46, 8.54), "lstm": (36, 8.67)},
              "theirs: the published JSB Chorales (382 chorales), RMSProp with weight noise, early stopping, the "
              "best of 10 rates; ours: music21's 347 chorales, Adam, a fixed budget, the best of a 3-rate grid "
              "(each cell at its choice on validation), the test scored once at the end"),
]


def per_cell(runs: pd.DataFrame, metrics: pd.DataFrame) -> list[tuple[Published, pd.DataFrame]]:
    """For each published table whose task the runs hold: one row per standard cell and size (the
    chosen runs: each cell at its best trial on validation), with its parameters (cell and
    readout), the seeds, the test metric's mean with its 95% t interval, frame accuracy where
    recorded, and the published units and value of its family."""
    out = []
    for pub in PUBLISHED:
        mine = runs[(runs.task == pub.task) & (runs.variant == "") & runs.training & runs.final_value.notna()]
        if mine.empty:
            continue
        test = metrics[(metrics.split == "test") & metrics.run_id.isin(mine.run_id)]
        extra = test.pivot_table(index="run_id", columns="metric", values="value")
        mine = mine.join(extra.drop(columns=[c for c in extra if c in mine]), on="run_id")
        rows = []
        for (family, size), g in mine.groupby(["family", "hidden_size"]):
            units, value = pub.cells.get(family, (None, None))
            est = stats.mean_diff(g.final_value.astype(float), g.seed)
            rows.append({"cell": family, "hidden_size": size, "param_match": g["config.param_match"].iloc[0] or "-",
                         "parameters": int(g.n_params.iloc[0] + g.n_params_readout.iloc[0]), "seeds": g.seed.nunique(),
                         f"test {pub.metric}": f"{est.mean:.3f} [{est.lo:.3f}, {est.hi:.3f}]",
                         **({"frame_accuracy": g.frame_accuracy.mean()} if "frame_accuracy" in g else {}),
                         "published units": units, f"published {pub.metric}": value})
        out.append((pub, pd.DataFrame(rows)))
    return out


def beside(verdicts) -> pd.DataFrame:
    """One row per part a finding speaks to: claim, part, our verdict, the published result and
    its citation, whether we agree ('yes', 'no', or 'undecided' where our part is), and, where we
    do not, what differs."""
    rows = []
    for v in verdicts:
        for f in (f for f in FINDINGS if f.claim == v.id):
            for key, label, verdict in (zip(v.parts.key, v.parts.part, v.parts.verdict) if len(v.parts) else ()):
                if not re.search(f.part, key):
                    continue
                agrees = "undecided" if verdict == stats.INCONCLUSIVE else "yes" if verdict == f.expects else "no"
                differs = f.differs if agrees == "no" else ""
                rows.append((v.id, label, verdict, f"{f.result} ({f.cite})", agrees, differs))
    return pd.DataFrame(rows, columns=["claim", "part", "verdict here", "published", "agrees", "what differs"])
