"""The text detectors' verdicts, compared with those recorded from the code before a speed-up.

Issue 19's follow-up made ``repetition`` and ``wrong_language`` cheaper (each distinct
input judged once, less Python per row); no verdict may change. ``signal_verdicts.json``
holds every signal's value on the labelled corpus (by case id) and on a sample generated
here from it (answers joined, looped, cut, blanked; prompt languages and prompts mixed),
recorded by running this file on the code before the change (exported, the package only)::

    git archive 3b5b18b forensics | tar -x -C /tmp/before
    python -m tests.test_signals_unchanged --record /tmp/before

The sample reads only the corpus cases recorded, so adding cases does not shift it; an
edited case changes the sample's digest and the test says to record again.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import polars as pl

from forensics.signals import DETECTORS, detect
from tests.test_signals import CORPUS_COLUMNS, _corpus, _corpus_frame

RECORD = Path(__file__).resolve().parent / "signal_verdicts.json"
SAMPLE_ROWS = 4_000
TAGS = ("en", "de", "fr", "ru", "zh", "ja", "ko", "th", "ar", "es", "de-AT", "pt_BR", "xx", None)
PROMPTS = (
    None,
    "Translate this into French, please.",
    "Please translate this paragraph.",
    "Erkläre es mir, aber antworte auf Englisch.",
    "Repeat the word 'ok' 50 times.",
    "Tell me about the French revolution.",
)


def _sample(cases: list[dict]) -> pl.DataFrame:
    """Rows built from the corpus's answers with a seeded generator."""
    rng = random.Random(19)
    texts = [c["response_text"] for c in cases if c["response_text"]]
    prompts = [c["prompt_text"] for c in cases if c.get("prompt_text")] + list(PROMPTS)
    rows: list[dict] = []
    for _ in range(SAMPLE_ROWS):
        text = "\n\n".join(rng.choice(texts) for _ in range(rng.randint(1, 4)))
        roll = rng.random()
        if roll < 0.08:  # a loop to the end: a word, a phrase, a character
            unit = rng.choice([*text.split()[:5], "的", "I cannot help. ", "-", "| "]) or "ok"
            text += " " + (unit + rng.choice(["", " ", "\n"])) * rng.randint(3, 300)
        elif roll < 0.12:  # cut anywhere, as a length limit does
            text = text[: rng.randint(0, len(text))]
        elif roll < 0.14:
            text = rng.choice(["", " ", "\n\n", "\t"])
        if rng.random() < 0.05:
            text += rng.choice(["   ", "\n\n", " \t\n"])
        rows.append(
            {
                "response_text": None if rng.random() < 0.01 else text,
                "prompt_language": rng.choice(TAGS),
                "prompt_text": rng.choice(prompts) if rng.random() < 0.3 else None,
                "finish_reason": rng.choice([None, "stop", "length"]),
                "output_tokens": rng.randint(0, 600),
                "max_tokens": rng.choice([None, 256, 512]),
            }
        )
    # Every distinct input again, in another order: a remembered verdict must be the same.
    rows += rng.sample(rows, len(rows) // 4)
    return pl.DataFrame(rows, schema=CORPUS_COLUMNS)


def _code(values: list[bool | None]) -> str:
    return "".join("N" if v is None else "T" if v else "F" for v in values)


def _digest(frame: pl.DataFrame) -> str:
    return hashlib.sha256(frame.write_csv().encode()).hexdigest()


def _verdicts(frame: pl.DataFrame) -> dict[str, str]:
    out = detect(frame)
    return {d.name: _code(out[d.name].to_list()) for d in DETECTORS}


def record() -> None:
    cases = _corpus()
    sample = _sample(cases)
    corpus = _verdicts(_corpus_frame(cases))
    RECORD.write_text(
        json.dumps(
            {
                "corpus": {
                    c["id"]: "".join(corpus[d.name][i] for d in DETECTORS)
                    for i, c in enumerate(cases)
                },
                "signals": [d.name for d in DETECTORS],
                "sample_digest": _digest(sample),
                "sample": _verdicts(sample),
            },
            indent=0,
            sort_keys=True,
        )
        + "\n",
        encoding="utf-8",
    )


def _recorded() -> tuple[dict, list[dict]]:
    recorded = json.loads(RECORD.read_text(encoding="utf-8"))
    cases = [c for c in _corpus() if c["id"] in recorded["corpus"]]
    assert len(cases) == len(recorded["corpus"]), "a recorded corpus case is gone: record again"
    return recorded, cases


def test_corpus_verdicts_are_those_recorded_before():
    recorded, cases = _recorded()
    got = _verdicts(_corpus_frame(cases))
    names = recorded["signals"]
    for i, case in enumerate(cases):
        now = "".join(got[name][i] for name in names)
        assert now == recorded["corpus"][case["id"]], (case["id"], names)


def test_sample_verdicts_are_those_recorded_before():
    recorded, cases = _recorded()
    sample = _sample(cases)
    assert _digest(sample) == recorded["sample_digest"], "the corpus changed: record again"
    got = _verdicts(sample)
    assert set(got) == set(recorded["sample"])
    for name, before in recorded["sample"].items():
        changed = [i for i, (a, b) in enumerate(zip(before, got[name], strict=True)) if a != b]
        assert not changed, (name, len(changed), changed[:5])
    fired = {name: codes.count("T") for name, codes in got.items()}
    assert fired["repetition"] > 100, fired
    assert fired["wrong_language"] > 100, fired


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--record":
        sys.exit("usage: python -m tests.test_signals_unchanged --record OLD_PACKAGE_DIR")
    # A child process imports forensics from the old code and this file from here.
    here = str(Path(__file__).resolve().parent.parent)
    script = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import forensics; "
        "from tests.test_signals_unchanged import record; record(); print(forensics.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, sys.argv[2], here],
        check=True,
        capture_output=True,
        text=True,
    )
    print(f"recorded {RECORD} with {done.stdout.strip()}")
