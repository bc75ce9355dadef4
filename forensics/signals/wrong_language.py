"""wrong_language: the whole answer is in a language other than the prompt's.

A Japanese answer to a German prompt, an English answer to a French one. Not
``script_mix`` (a run of foreign letters inside an answer in the right
language): here the answer as a whole, prose only, reads as another language.

The prompt's language is ``prompt_language`` (its primary subtag: ``de-AT`` is
``de``), else the language identified in ``prompt_text``; with neither the
signal is null, and so it is for a language the identifier does not know.

The rule, for an answer with at least ``wrong_language_min_letters`` letters of
prose (code blocks, inline code, links and quoted or bracketed spans removed,
unless most of the answer is a quote; a Han, kana or Hangul character counts as
two; a shorter or code-only answer is false):

1. **Confirmed at once.** In SQL, the answer's first ``HEAD_CHARS`` characters
   are tested for the prompt's language: two of its common short words
   (``MARKERS``: ``the``/``and``/``you`` for English, ``und``/``nicht``/``ist`` for
   German...) or, for a language with a script of its own (``SCRIPT_MARKERS``),
   letters of that script (hiragana for Japanese, Hangul for Korean, Han without
   kana for Chinese). Most answers stop here, false, without Python.
2. **Identified.** The rest reach a Python function: the answer's letters by
   script first (an answer written in a script the prompt's language does not
   use, or in a script only one language uses, is that language), else the
   language identifier (``py3langid``, a fork of langid.py whose naive Bayes
   model over byte n-grams ships inside its package, restricted to
   ``LANGUAGES``) on the start and, for a long answer, the end of its prose:
   both must name the same language, with probability at least
   ``wrong_language_min_confidence``.
3. **Fire** when that language is not the prompt's (``SAME_LANGUAGE``: Norwegian
   Bokmål is Norwegian, Malay is Indonesian's close kin, Serbian, Croatian and
   Bosnian are one) and not one the prompt asked for: with ``prompt_text``, a
   prompt asking for a translation or an answer in a language (``TRANSLATE``,
   ``ANSWER_IN``) allows every language it names (``LANGUAGE_NAMES``), and a
   translation request naming none allows any.

Known limits: an answer that mixes two languages at length (half a
translation) reads as the language of its start and end; the identifier confuses
close languages on short prose (Spanish and Galician, Czech and Slovak); a
request for another language that the prompt words in a way ``ANSWER_IN`` does
not list fires.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Set
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa

from forensics.signals._detector import (
    Detector,
    SignalParams,
    Stages,
    VerdictMemo,
    column_or_null,
    once_per_distinct,
    register_arrow_function,
    sql_literal,
)
from forensics.signals.script_mix import CODE, SCRIPT_BLOCKS

__all__ = [
    "ANSWER_IN",
    "DETECTOR",
    "FUNCTION_NAME",
    "HEAD_CHARS",
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "MARKERS",
    "SAME_LANGUAGE",
    "SCRIPT_MARKERS",
    "TRANSLATE",
    "answer_language",
    "identify",
    "judge",
    "prose",
    "requested_languages",
]

FUNCTION_NAME = "forensics_wrong_language"
"""Name of the Python UDF registered on the connection."""

HEAD_CHARS = 400
"""Characters at the start of the answer the SQL confirms the prompt's language in."""

WINDOW_CHARS = 500
"""Characters of prose the identifier reads at the start (and at the end) of an answer."""

WHOLE_SHARE = 0.8
"""Share of an answer's letters one script must hold for the answer to be written in
it; below, the answer mixes scripts (a quoted translation, an inserted run: script_mix's
business), and no language is the whole answer's."""

LANGUAGES: tuple[str, ...] = (
    "af", "ar", "az", "be", "bg", "bn", "bs", "ca", "cs", "cy", "da", "de", "el", "en", "es",
    "et", "eu", "fa", "fi", "fr", "ga", "gl", "gu", "he", "hi", "hr", "hu", "hy", "id", "is",
    "it", "ja", "ka", "kk", "km", "kn", "ko", "lo", "lt", "lv", "mk", "ml", "mn", "mr", "ms",
    "my", "ne", "nl", "no", "pa", "pl", "ps", "pt", "ro", "ru", "si", "sk", "sl", "sq", "sr",
    "sv", "sw", "ta", "te", "th", "tl", "tr", "uk", "ur", "uz", "vi", "zh",
)  # fmt: skip
"""Languages the identifier chooses among (ISO 639-1): the world's widely written ones.
Restricting it keeps rare languages from being guessed for short prose."""

SAME_LANGUAGE: dict[str, str] = {
    "nb": "no", "nn": "no", "no": "no", "ms": "id", "id": "id", "bs": "hr", "sr": "hr",
    "hr": "hr", "fil": "tl", "tl": "tl", "iw": "he", "in": "id", "cmn": "zh", "yue": "zh",
}  # fmt: skip
"""Tags that count as one language here (close kin the identifier cannot tell apart)."""


def _same(code: str) -> str:
    return SAME_LANGUAGE.get(code, code)


def _words(*words: str) -> str:
    """RE2: one of ``words`` standing alone (no letter before or after)."""
    return rf"(?:^|[^\p{{L}}])(?:{'|'.join(words)})(?:[^\p{{L}}]|$)"


MARKERS: dict[str, str] = {
    "en": _words("the", "and", "you", "that", "this", "with", "are", "your", "which", "there",
                 "what", "would", "should", "they", "their", "from", "about", "have", "been",
                 "it", "for", "can", "will", "not", "but", "if", "just", "we", "our", "how",
                 "when", "also", "has", "its", "into", "than", "then", "them", "these", "only"),
    "de": _words("und", "ist", "nicht", "das", "ein", "eine", "mit", "sich", "auf", "für", "dem",
                 "auch", "wird", "sind", "oder", "wenn", "kann", "werden", "ich", "wir", "sie",
                 "der", "den", "zu", "von", "im", "bei", "nach", "aus", "über", "noch", "nur",
                 "wie", "als", "des", "einen"),
    "fr": _words("les", "est", "et", "des", "une", "pour", "dans", "pas", "vous", "avec", "sur",
                 "qui", "sont", "nous", "elle", "cette", "aux", "mais", "être", "très"),
    "es": _words("el", "los", "las", "y", "del", "pero", "más", "muy", "también", "puede",
                 "usted", "hay", "sobre", "entre", "cuando", "donde", "está", "es"),
    "pt": _words("não", "uma", "com", "os", "ao", "dos", "das", "em", "você", "são", "também",
                 "muito", "isso", "pode", "seu", "sua", "mais", "é"),
    "it": _words("il", "gli", "di", "che", "è", "sono", "della", "anche", "più", "questo",
                 "molto", "perché", "degli", "nel", "alla", "per", "non"),
    "nl": _words("het", "een", "niet", "zijn", "ook", "maar", "naar", "bij", "deze", "wordt",
                 "kunt", "heeft", "dit", "van", "je"),
    "sv": _words("och", "att", "det", "som", "är", "på", "för", "med", "inte", "till", "har",
                 "jag", "kan", "också", "eller"),
    "pl": _words("się", "jest", "że", "nie", "są", "dla", "może", "przez", "również", "jak",
                 "czy", "oraz", "który", "która", "które"),
    "tr": _words("ve", "bir", "bu", "için", "ile", "çok", "olarak", "daha", "ama", "gibi",
                 "değil", "olan", "sonra", "ancak"),
    "vi": _words("và", "của", "là", "các", "được", "không", "có", "những", "một", "cho",
                 "trong", "này", "với", "người", "để"),
    "id": _words("dan", "yang", "ini", "itu", "dengan", "untuk", "tidak", "dari", "dalam",
                 "akan", "ada", "juga", "bisa", "atau"),
    "ru": _words("что", "это", "как", "для", "который", "если", "можно", "только", "когда",
                 "его", "быть", "было", "есть", "вы", "мы", "они", "и", "не", "на", "в", "с",
                 "по", "из", "от", "к", "о", "а", "но", "же", "все", "так"),
    "uk": _words("і", "що", "це", "як", "та", "також", "який", "може", "буде", "бути", "ще",
                 "вже", "ви", "ми", "із"),
    "ar": _words("في", "على", "إلى", "التي", "الذي", "هذه", "ذلك", "كان", "عن", "هذا", "من",
                 "أن", "ما", "لا", "هو", "هي", "مع", "كل", "بين"),
    "fa": _words("است", "این", "را", "که", "می", "در", "از", "برای", "یک", "با"),
    "hi": _words("है", "हैं", "में", "और", "यह", "के", "की", "का", "को", "से"),
}  # fmt: skip
"""RE2 per language: one of its common short words. Two in an answer's start confirm it."""

SCRIPT_MARKERS: dict[str, str] = {
    "ja": r"\p{Hiragana}",
    "ko": r"\p{Hangul}",
    "th": r"\p{Thai}",
    "el": r"\p{Greek}",
    "he": r"\p{Hebrew}",
    "ka": r"\p{Georgian}",
    "hy": r"\p{Armenian}",
    "km": r"\p{Khmer}",
    "lo": r"\p{Lao}",
    "my": r"\p{Myanmar}",
    "ta": r"\p{Tamil}",
    "te": r"\p{Telugu}",
    "kn": r"\p{Kannada}",
    "ml": r"\p{Malayalam}",
    "gu": r"\p{Gujarati}",
    "pa": r"\p{Gurmukhi}",
    "bn": r"\p{Bengali}",
    "si": r"\p{Sinhala}",
}
"""RE2 per language written in a script of its own: one letter of it. Two runs of it,
none opening right after a quote or bracket (a cited word is no evidence), confirm it."""


def _confirm_pattern(lang: str) -> str | None:
    if lang in MARKERS:
        word = MARKERS[lang]
        return f"(?i){word}[\\s\\S]*?{word}"
    if lang in SCRIPT_MARKERS:
        letter = SCRIPT_MARKERS[lang]
        # a run of the script that does not open right after a quote or bracket
        run = f"(?:^|[^{letter[1:-1] if letter.startswith('[') else letter}{_OPENERS}]){letter}"
        return f"{run}[\\s\\S]*?{run}"
    return None


_OPENERS = "\"“„«»「」『』'(（\\[【《"
"""Characters that open a quote or a bracket: a run of letters right after one is cited."""

_HAN = r"(\p{Han}[\s\S]*?){3}"
_KANA = r"[\p{Hiragana}\p{Katakana}]"


def _confirm_sql(head: str, lang: str) -> str:
    """SQL: whether the answer's start is clearly in the language ``lang`` (a stage column)."""
    whens = []
    for code in sorted(set(MARKERS) | set(SCRIPT_MARKERS)):
        pattern = _confirm_pattern(code)
        assert pattern is not None
        whens.append(
            f"WHEN {sql_literal(code)} THEN regexp_matches({head}, {sql_literal(pattern)})"
        )
    zh = (
        f"WHEN 'zh' THEN regexp_matches({head}, {sql_literal(_HAN)}) "
        f"AND NOT regexp_matches({head}, {sql_literal(_KANA)})"
    )
    return f"(CASE {lang} {' '.join(whens)} {zh} ELSE false END)"


# -- what the prompt asks for -----------------------------------------------------------

LANGUAGE_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("english", "englisch", "anglais", "inglés", "ingles", "inglese", "inglês", "engels",
           "engelska", "angielski", "ingilizce", "tiếng anh", "inggris", "английский",
           "английском", "англійською", "英语", "英文", "英語", "영어", "ภาษาอังกฤษ"),
    "de": ("german", "deutsch", "allemand", "alemán", "aleman", "tedesco", "alemão", "duits",
           "tyska", "niemiecki", "almanca", "tiếng đức", "jerman", "немецкий", "немецком",
           "德语", "德文", "ドイツ語", "독일어"),
    "fr": ("french", "französisch", "français", "francais", "francés", "frances", "francese",
           "francês", "frans", "franska", "francuski", "fransızca", "tiếng pháp", "prancis",
           "французский", "французском", "法语", "法文", "フランス語", "프랑스어"),
    "es": ("spanish", "spanisch", "espagnol", "español", "espanol", "spagnolo", "espanhol",
           "spaans", "spanska", "hiszpański", "ispanyolca", "tiếng tây ban nha", "spanyol",
           "испанский", "испанском", "西班牙语", "西班牙文", "スペイン語", "스페인어"),
    "it": ("italian", "italienisch", "italien", "italiano", "italiaans", "italienska",
           "włoski", "italyanca", "итальянский", "意大利语", "イタリア語", "이탈리아어"),
    "pt": ("portuguese", "portugiesisch", "portugais", "portugués", "portoghese", "português",
           "portugees", "portugisiska", "portugalski", "portekizce", "португальский",
           "葡萄牙语", "ポルトガル語", "포르투갈어"),
    "nl": ("dutch", "niederländisch", "néerlandais", "neerlandés", "olandese", "holandês",
           "nederlands", "нидерландский", "荷兰语", "オランダ語", "네덜란드어"),
    "ru": ("russian", "russisch", "russe", "ruso", "russo", "russisch", "ryska", "rosyjski",
           "rusça", "tiếng nga", "rusia", "русский", "русском", "по-русски", "російською",
           "俄语", "俄文", "ロシア語", "러시아어"),
    "uk": ("ukrainian", "ukrainisch", "ukrainien", "ucraniano", "ucraino", "українською",
           "украинский", "乌克兰语", "ウクライナ語", "우크라이나어"),
    "pl": ("polish", "polnisch", "polonais", "polaco", "polacco", "polonês", "pools", "polski",
           "polsku", "польский", "波兰语", "ポーランド語", "폴란드어"),
    "tr": ("turkish", "türkisch", "turc", "turco", "turks", "türkçe", "турецкий", "土耳其语",
           "トルコ語", "터키어"),
    "sv": ("swedish", "schwedisch", "suédois", "sueco", "svedese", "zweeds", "svenska",
           "шведский", "瑞典语", "スウェーデン語", "스웨덴어"),
    "zh": ("chinese", "mandarin", "chinesisch", "chinois", "chino", "cinese", "chinês",
           "chinees", "kinesiska", "chiński", "çince", "tiếng trung", "китайский", "китайском",
           "中文", "汉语", "漢語", "华语", "普通话", "中国語", "중국어", "ภาษาจีน"),
    "ja": ("japanese", "japanisch", "japonais", "japonés", "giapponese", "japonês", "japans",
           "japanska", "japoński", "japonca", "tiếng nhật", "jepang", "японский", "японском",
           "日语", "日文", "日本語", "일본어", "ภาษาญี่ปุ่น"),
    "ko": ("korean", "koreanisch", "coréen", "coreano", "koreaans", "koreanska", "koreański",
           "korece", "tiếng hàn", "korea", "корейский", "韩语", "韓国語", "한국어", "ภาษาเกาหลี"),
    "th": ("thai", "thailändisch", "thaï", "tailandés", "tailandese", "tailandês", "thais",
           "тайский", "泰语", "タイ語", "태국어", "ภาษาไทย"),
    "vi": ("vietnamese", "vietnamesisch", "vietnamien", "vietnamita", "tiếng việt",
           "вьетнамский", "越南语", "ベトナム語", "베트남어"),
    "ar": ("arabic", "arabisch", "arabe", "árabe", "arabo", "arabiska", "arapça", "арабский",
           "阿拉伯语", "アラビア語", "아랍어", "العربية"),
    "hi": ("hindi", "хинди", "印地语", "ヒンディー語", "힌디어", "हिंदी", "हिन्दी"),
    "id": ("indonesian", "indonesisch", "indonésien", "indonesio", "bahasa indonesia",
           "индонезийский", "印尼语", "インドネシア語", "인도네시아어"),
    "el": ("greek", "griechisch", "grec", "griego", "greco", "grego", "grieks", "греческий",
           "希腊语", "ギリシャ語", "그리스어", "ελληνικά"),
    "he": ("hebrew", "hebräisch", "hébreu", "hebreo", "ebraico", "hebraico", "иврит",
           "希伯来语", "ヘブライ語", "히브리어", "עברית"),
    "fa": ("persian", "farsi", "persisch", "persan", "persa", "persiano", "фарси", "波斯语",
           "ペルシア語", "페르시아어", "فارسی"),
}  # fmt: skip
"""Names of languages, in English, in the language itself and in a few others, lower case."""

TRANSLATE = re.compile(
    r"translat|übersetz|tradu[iczs]|vertaal|översätt|przetłumacz|tłumacz|çevir|\bdịch|"
    r"terjemah|перевед|перевест|переклад|翻译|翻譯|翻訳|번역|แปล|ترجم|अनुवाद",
    re.IGNORECASE,
)
"""A prompt that asks for a translation."""

ANSWER_IN = re.compile(
    r"\b(?:in|into|auf|en|em|al|na|nach|на|по)\s+$|"
    r"\b(?:answer|respond|reply|write|speak|say|explain|antworte|schreib|réponds|répondez|"
    r"écris|responde|contesta|escribe|rispondi|scrivi|responda|escreva|antwoord|ответь|"
    r"ответьте|напиши|відповідай|odpowiedz|cevap|svara)\b",
    re.IGNORECASE,
)
"""Words before a language's name, or a verb, that make a prompt ask for an answer in it."""

_NAME_PATTERN = re.compile(
    "|".join(
        re.escape(name)
        for name in sorted(
            (n for names in LANGUAGE_NAMES.values() for n in names), key=len, reverse=True
        )
    ),
    re.IGNORECASE,
)
_CODE_OF_NAME = {name: code for code, names in LANGUAGE_NAMES.items() for name in names}
_AFTER_NAME = re.compile(r"^\s*(?:で|로|으로|로요)")  # 日本語で, 한국어로


Requested = frozenset[str] | Literal["any"]


def requested_languages(prompt: str) -> Requested:
    """Languages a prompt asks the answer (or a translation) to be in; ``"any"`` if unnamed.

    Examples
    --------
    >>> sorted(requested_languages("Translate 'good morning' into German and French"))
    ['de', 'fr']
    >>> requested_languages("Please translate this paragraph.")
    'any'
    >>> sorted(requested_languages("Erkläre es mir, aber antworte auf Englisch."))
    ['en']
    >>> requested_languages("Tell me about the French revolution.")
    frozenset()
    """
    found: set[str] = set()
    requested: set[str] = set()
    for match in _NAME_PATTERN.finditer(prompt):
        code = _CODE_OF_NAME[match.group(0).lower()]
        found.add(code)
        before = prompt[max(0, match.start() - 12) : match.start()]
        after = prompt[match.end() : match.end() + 4]
        is_cjk_name = not match.group(0).isascii() and not match.group(0)[0].isalpha()
        if (
            re.search(r"(?:\b(?:in|into|auf|en|em|al|na|nach)|на|по-?|用|以)\s*$", before, re.I)
            or _AFTER_NAME.match(after)
            or is_cjk_name
        ):
            requested.add(code)
    if TRANSLATE.search(prompt):
        return frozenset(found) if found else "any"
    if found and ANSWER_IN.search(prompt):
        return frozenset(found)
    return frozenset(requested)


# -- the answer's language ------------------------------------------------------------------

_FENCED = re.compile(r"```[\s\S]*?(?:```|$)|~~~[\s\S]*?(?:~~~|$)|`[^`\n]+`")
_LINKS = re.compile(r"https?://\S+|www\.\S+|\S+@\S+\.\w+")
_QUOTED = re.compile(
    r'"[^"\n]*"|“[^”\n]*”|„[^“”\n]*[“”]|«[^»\n]*»|»[^«\n]*«|「[^」\n]*」|『[^』\n]*』'
    r"|（[^）\n]*）|\([^)\n]*\)"
)
"""Quoted or bracketed spans: what an answer cites (a word, a phrase, a reading) is not
the language it is written in."""


def prose(text: str, *, quotes: bool = False) -> str:
    r"""The answer without code, links and (unless ``quotes``) quoted or bracketed spans.

    Examples
    --------
    >>> prose('Run `ls` then:\n```py\nx = 1\n```\nsee https://x.org "quoted" (aside)')
    'Run   then:\n \nsee'
    """
    out = _LINKS.sub(" ", _FENCED.sub(" ", text))
    return (out if quotes else _QUOTED.sub(" ", out)).rstrip()


def _letters(text: str) -> int:
    """Letters of ``text``, a wide one (Han, kana, Hangul) counting as two.

    A Chinese or Japanese character is a syllable or a word: a sentence takes about
    half as many of them as Latin letters. Counted per distinct character (``Counter``
    walks the text in C), which gives the sum over characters.

    Examples
    --------
    >>> _letters("ab 1 東京!")
    6
    """
    return sum(n * _weight(ch) for ch, n in Counter(text).items())


@functools.lru_cache(maxsize=65_536)
def _weight(ch: str) -> int:
    """What a character adds to ``_letters``: 0 unless a letter, 2 for a wide one."""
    if not ch.isalpha():
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


@functools.cache
def _script_of() -> dict[int, str]:
    """Code point -> tracked script (the blocks script_mix names runs by)."""
    out: dict[int, str] = {}
    for name, blocks in SCRIPT_BLOCKS.items():
        for lo, hi in blocks:
            for cp in range(lo, hi + 1):
                out.setdefault(cp, name)
    return out


@functools.lru_cache(maxsize=65_536)
def _letter_group(ch: str) -> str | None:
    """The script group of a letter (``_GROUPS``), None for any other character.

    A letter of no tracked script is Latin.
    """
    if not ch.isalpha():
        return None
    script = _script_of().get(ord(ch), "Latin")
    return _GROUPS.get(script, script)


def _groups(chars: Counter[str]) -> dict[str, int]:
    """Letters per script group, in the order of each group's first letter in the text.

    ``chars`` counts a text's characters in the order they first occur (``Counter``
    keeps it), so this is what a walk over the text's characters would give.
    """
    groups: dict[str, int] = {}
    for ch, n in chars.items():
        group = _letter_group(ch)
        if group is not None:
            groups[group] = groups.get(group, 0) + n
    return groups


_ONLY_LANGUAGE = {
    "Hiragana": "ja", "Katakana": "ja", "Hangul": "ko", "Thai": "th", "Greek": "el",
    "Hebrew": "he", "Georgian": "ka", "Armenian": "hy", "Khmer": "km", "Lao": "lo",
    "Myanmar": "my", "Tamil": "ta", "Telugu": "te", "Kannada": "kn", "Malayalam": "ml",
    "Gujarati": "gu", "Gurmukhi": "pa", "Sinhala": "si", "Ethiopic": "am", "Tibetan": "bo",
}  # fmt: skip
"""Scripts one language (of ``LANGUAGES`` and the prompts we see) is written in."""


@functools.cache
def _identifier() -> object:
    """The language identifier (loaded once; its model ships inside ``py3langid``)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    # The model's table is float16; restricted to our languages and held as contiguous
    # float32 it is gathered and multiplied 2.5x faster (30 MB), with the same answers.
    identifier.nb_ptc = np.ascontiguousarray(identifier.nb_ptc, dtype=np.float32)
    return identifier


def identify(text: str) -> tuple[str, float]:
    """The language of ``text`` by the identifier alone, and its probability.

    Examples
    --------
    >>> identify("Das Wetter ist heute schön, und wir gehen spazieren.")[0]
    'de'
    """
    code, probability = _identifier().classify(text)  # type: ignore[attr-defined]
    return _same(code), float(probability)


_GROUPS: dict[str, str] = {"Hiragana": "Han", "Katakana": "Han"}
"""Scripts counted with another when finding the script an answer is written in."""


_HIRAGANA = re.compile(r"[\u3041-\u309f]")
_KATAKANA = re.compile(r"[\u30a1-\u30ff\u31f0-\u31ff\uff66-\uff9d]")


def _han_language(text: str, letters: int) -> str | None:
    """Japanese or Chinese for an answer written in Han (and kana), or None when mixed.

    Line by line: a line with hiragana (Japanese particles and endings) is Japanese,
    one with Han and no kana is Chinese, and one whose kana are katakana only tells
    neither (a loanword or a title is written so in both). The answer is the
    language of the lines holding at least ``WHOLE_SHARE`` of the letters of the
    lines that tell.
    """
    weight = {"ja": 0, "zh": 0}
    for line in re.split(r"[\n。！？!?]", text):
        n = sum(1 for ch in line if ch.isalpha())
        if not n:
            continue
        if _HIRAGANA.search(line):
            weight["ja"] += n
        elif not _KATAKANA.search(line):
            weight["zh"] += n
    total = sum(weight.values())
    language = max(weight, key=lambda k: weight[k])
    return language if total and weight[language] >= WHOLE_SHARE * total else None


def answer_language(text: str, *, min_confidence: float) -> str | None:
    """The language a piece of prose is written in, or None when not clear.

    The answer is written in one script when that script (kana counted with Han)
    holds at least ``WHOLE_SHARE`` of its letters, else it is mixed and None. Then
    by script where the script tells (Han: lines with hiragana are Japanese, others
    Chinese; Hangul Korean...); else by the identifier, on the text without the
    letters of other scripts, with at least ``min_confidence``.

    Examples
    --------
    >>> answer_language("東京は日本の首都です。人口はとても多いです。", min_confidence=0.9)
    'ja'
    >>> answer_language("The weather is nice today, so we are going for a walk.", min_confidence=0.9)
    'en'
    >>> answer_language("Binary search halves the ช่วง range it still has to look at each time.",
    ...                 min_confidence=0.9)
    'en'
    """
    chars = Counter(text)
    groups = _groups(chars)
    total = sum(groups.values())
    if not total:
        return None
    group, top = max(groups.items(), key=lambda kv: kv[1])
    if top < WHOLE_SHARE * total:
        return None
    if group == "Han":
        return _han_language(text, top)
    if group in _ONLY_LANGUAGE:
        return _ONLY_LANGUAGE[group]
    dropped = {ord(ch): None for ch in chars if _letter_group(ch) not in (None, group)}
    kept = text.translate(dropped) if dropped else text  # the letters of other scripts out
    code, probability = identify(kept)
    return code if probability >= min_confidence else None


def _windows(text: str) -> list[str]:
    if len(text) <= 2 * WINDOW_CHARS:
        return [text]
    return [text[:WINDOW_CHARS], text[-WINDOW_CHARS:]]


def judge(
    text: str,
    lang: str | None,
    prompt: str | None,
    *,
    min_letters: int,
    min_confidence: float,
) -> bool | None:
    """wrong_language of one answer (the rule of the module docstring).

    ``lang`` is the primary subtag of ``prompt_language`` (lower case) or None.

    Examples
    --------
    >>> judge("東京は日本の首都です。人口はとても多く、交通も便利です。", "de", None,
    ...       min_letters=20, min_confidence=0.9)
    True
    >>> judge("Das Wetter ist heute schön, und wir gehen spazieren.", "de", None,
    ...       min_letters=20, min_confidence=0.9)
    False
    >>> judge("Bonjour, je vais bien, merci beaucoup pour votre question.", "en",
    ...       "Translate 'I am fine, thank you' into French.", min_letters=20, min_confidence=0.9)
    False
    """
    words = prose(text)
    if _letters(words) < min_letters:
        quoted = prose(text, quotes=True)
        if 2 * _letters(words) >= _letters(quoted) or _letters(quoted) < min_letters:
            return False
        words = quoted  # an answer that is mostly a quote is written in its quote's language
    expected = _same(lang) if lang else None
    if (
        expected is not None
        and expected not in LANGUAGES
        and expected not in _ONLY_LANGUAGE.values()
    ):
        expected = None
    if expected is None and prompt:
        asked = prose(prompt)
        if _letters(asked) >= min_letters:
            expected = answer_language(asked, min_confidence=min_confidence)
    if expected is None:
        return None
    allowed = {expected}
    if prompt:
        requested = requested_languages(prompt)
        if requested == "any":
            return False
        allowed |= {_same(c) for c in requested}
    found = {answer_language(w, min_confidence=min_confidence) for w in _windows(words)}
    if len(found) != 1 or None in found:
        return False  # not clear, or two languages: not the whole answer
    (got,) = found
    assert got is not None
    return got not in allowed


MEMO = VerdictMemo(max_chars=16_000_000, max_entry_chars=20_000)
"""Verdicts by (answer, prompt language, prompt, thresholds), remembered between vectors:
at most 16 million characters of inputs, none longer than 20,000 (an answer that long is
rarely repeated, and judging it costs little next to reading it)."""


def _judge(
    text: str, lang: str | None, prompt: str | None, letters: int, confidence: float
) -> bool | None:
    return judge(text, lang, prompt, min_letters=letters, min_confidence=confidence)


def _udf(
    texts: pa.Array,
    langs: pa.Array,
    prompts: pa.Array,
    min_letters: pa.Array,
    min_confidence: pa.Array,
) -> pa.Array:
    """Vectorised check over the rows the SQL could not confirm, once per distinct row.

    ``judge`` depends on its arguments alone, so a repeated answer (to a prompt in the
    same language) takes the verdict it had (``MEMO``): no result changes.
    """
    return once_per_distinct(_judge, MEMO, texts, langs, prompts, min_letters, min_confidence)


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Register the UDF on ``con`` (vectorised over Arrow arrays, no side effects)."""
    register_arrow_function(
        con, FUNCTION_NAME, _udf, ["VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "DOUBLE"]
    )


_LANG = "_wrong_language_lang"
"""Stage column: the primary subtag of prompt_language, lower case (null if missing)."""
_HEAD = "_wrong_language_head"
"""Stage column: the answer's first ``HEAD_CHARS`` characters, code blanked."""


def _stages(params: SignalParams, present: Set[str]) -> Stages:
    tag = column_or_null("prompt_language", present)
    lang = f"nullif(lower(split_part(replace(trim({tag}), '_', '-'), '-', 1)), '')"
    head = f"left(response_text, {HEAD_CHARS})"
    no_code = (
        f"CASE WHEN contains({head}, '`') OR contains({head}, '~~~') "
        f"THEN regexp_replace({head}, {sql_literal(CODE)}, ' ', 'g') ELSE {head} END"
    )
    return (((_LANG, lang), (_HEAD, no_code)),)


def _sql(params: SignalParams, present: Set[str]) -> str:
    prompt = column_or_null("prompt_text", present)
    return (
        "CASE WHEN response_text IS NULL THEN NULL "
        f"WHEN {_LANG} IS NULL AND {prompt} IS NULL THEN NULL "
        f"WHEN {_LANG} IS NOT NULL AND {_confirm_sql(_HEAD, _LANG)} THEN false "
        "WHEN strlen(response_text) < $wrong_language_min_letters THEN false "
        f"ELSE {FUNCTION_NAME}(response_text, {_LANG}, {prompt}, "
        "$wrong_language_min_letters, $wrong_language_min_confidence) END"
    )


DETECTOR = Detector(
    name="wrong_language",
    description="The whole answer is in a language other than the prompt's (and not one it asked for)",
    requires=("response_text",),
    sql=_sql,
    register=register,
    stages=_stages,
)
