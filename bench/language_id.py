"""Language identifiers compared on the corpus: accuracy and time per answer, same run.

Reads the answers of tests/signal_corpus/wrong_language.jsonl whose language is
recorded (``answer_language``: the answers written in each language, to their own
prompt and to others') and asks each identifier for their language: py3langid (the
one forensics depends on, restricted to ``wrong_language.LANGUAGES``, as the
detector runs it), and, when they are importable, lingua-language-detector and
pycld2 (candidates that were not chosen; install them beside it, e.g. with
``pip install --target DIR`` and ``PYTHONPATH=DIR``, to compare). Also times
``wrong_language.answer_language``, the detector's own step (script first, then
py3langid). Usage:

    python bench/language_id.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from forensics.signals import wrong_language as wl

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "signal_corpus" / "wrong_language.jsonl"


NATIVE = ("native.jsonl", "english.jsonl")
"""Files of the older corpus whose plain answers are written in their prompt's language."""

_PLAIN = ("english", "german", "russian", "chinese", "japanese", "thai", "korean", "arabic")


def _cases() -> list[tuple[str, str]]:
    """(language, answer) of the wrong_language corpus's answers of recorded language."""
    out = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        if case.get("answer_language"):
            out.append((case["answer_language"], case["response_text"]))
    return out


def _short_cases() -> list[tuple[str, str]]:
    """(language, answer) of the older corpus's plain answers: short, one or two sentences."""
    out = []
    for name in NATIVE:
        for line in (CORPUS.parent / name).read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            if case["category"] in _PLAIN and case["prompt_language"] and case["response_text"]:
                lang = case["prompt_language"].replace("_", "-").split("-")[0].lower()
                out.append((lang, case["response_text"]))
    return out


def _identifiers() -> dict[str, Callable[[str], str | None]]:
    found: dict[str, Callable[[str], str | None]] = {
        "py3langid (restricted, as the detector runs it)": lambda t: wl.identify(t)[0],
        "wrong_language.answer_language (script, then py3langid)": lambda t: wl.answer_language(
            t, min_confidence=0.0
        ),
    }
    try:
        from lingua import LanguageDetectorBuilder

        detector = (
            LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()
        )

        def lingua(text: str) -> str | None:
            language = detector.detect_language_of(text)
            return None if language is None else language.iso_code_639_1.name.lower()

        found["lingua-language-detector (all languages, high accuracy)"] = lingua
    except ImportError:
        pass
    try:
        import pycld2

        def cld2(text: str) -> str | None:
            return pycld2.detect(text)[2][0][1].split("-")[0]

        found["pycld2"] = cld2
    except ImportError:
        pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    identifiers = _identifiers()
    for title, cases in (
        ("wrong_language.jsonl, answers of recorded language", _cases()),
        ("older corpus, plain answers in their prompt's language (short)", _short_cases()),
    ):
        print(f"{title}: {len(cases)} answers in {len({lang for lang, _ in cases})} languages")
        for name, identify in identifiers.items():
            identify(cases[0][1])  # load the model
            wrong = [
                (lang, got, text[:40])
                for lang, text in cases
                if (got := identify(text)) is None
                or wl.SAME_LANGUAGE.get(got, got) != wl.SAME_LANGUAGE.get(lang, lang)
            ]
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                for _, text in cases:
                    identify(text)
                times.append((time.perf_counter() - start) / len(cases))
            right = len(cases) - len(wrong)
            print(
                f"  {name:58s} accuracy {right}/{len(cases)} = {right / len(cases):.3f}   "
                f"{statistics.median(times) * 1e6:7.1f} us/answer   wrong: {wrong}"
            )


if __name__ == "__main__":
    main()
