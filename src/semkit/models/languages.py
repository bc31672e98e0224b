"""Which language a text is in, offline, and whether a model was trained for it.

Detection is a light heuristic sized for search queries and document chunks, with no model and
no network: the Unicode script decides for non-Latin writing (Han, kana, Hangul, Cyrillic,
Arabic, Greek, Hebrew, the Indic scripts, Thai...), and for Latin script the function words of
the main European languages, plus letters only one of them uses (ñ, ß, ł...), decide. It answers
``None`` whenever the evidence is thin (a few technical words such as ``kubernetes pod
crashloop``) or split between languages: a wrong guess would raise a false alarm, while
``None`` only keeps quiet.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from ..errors import InvalidInput, ModelNotAvailable
from . import catalog

# ISO 639-1 code -> English name: the codes ``semkit models --language`` accepts and the names
# warnings print (the union of the XLM-R pretraining languages and the paraphrase-multilingual
# model cards).
LANGUAGE_NAMES: dict[str, str] = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "as": "Assamese", "az": "Azerbaijani",
    "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali", "bo": "Tibetan", "br": "Breton",
    "bs": "Bosnian", "ca": "Catalan", "cs": "Czech", "cy": "Welsh", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "eo": "Esperanto", "es": "Spanish", "et": "Estonian",
    "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French", "fy": "Western Frisian",
    "ga": "Irish", "gd": "Scottish Gaelic", "gl": "Galician", "gu": "Gujarati", "ha": "Hausa",
    "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "hy": "Armenian",
    "id": "Indonesian", "is": "Icelandic", "it": "Italian", "ja": "Japanese", "jv": "Javanese",
    "ka": "Georgian", "kk": "Kazakh", "km": "Khmer", "kn": "Kannada", "ko": "Korean",
    "ku": "Kurdish", "ky": "Kyrgyz", "la": "Latin", "lo": "Lao", "lt": "Lithuanian",
    "lv": "Latvian", "mg": "Malagasy", "mk": "Macedonian", "ml": "Malayalam", "mn": "Mongolian",
    "mr": "Marathi", "ms": "Malay", "my": "Burmese", "nb": "Norwegian Bokmål", "ne": "Nepali",
    "nl": "Dutch", "no": "Norwegian", "om": "Oromo", "or": "Odia", "pa": "Punjabi", "pl": "Polish",
    "ps": "Pashto", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sa": "Sanskrit",
    "sd": "Sindhi", "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian", "so": "Somali",
    "sq": "Albanian", "sr": "Serbian", "su": "Sundanese", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ug": "Uyghur",
    "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese", "xh": "Xhosa",
    "yi": "Yiddish", "zh": "Chinese",
}

# --- scripts ------------------------------------------------------------------------------------

# (first code point, last code point, script); scripts not listed here count as "other"
_SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x024F, "latin"), (0x1E00, 0x1EFF, "latin"),
    (0x0370, 0x03FF, "greek"), (0x1F00, 0x1FFF, "greek"),
    (0x0400, 0x052F, "cyrillic"),
    (0x0530, 0x058F, "armenian"),
    (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"), (0xFB50, 0xFDFF, "arabic"),
    (0xFE70, 0xFEFF, "arabic"),
    (0x0900, 0x097F, "devanagari"), (0x0980, 0x09FF, "bengali"), (0x0A00, 0x0A7F, "gurmukhi"),
    (0x0A80, 0x0AFF, "gujarati"), (0x0B00, 0x0B7F, "oriya"), (0x0B80, 0x0BFF, "tamil"),
    (0x0C00, 0x0C7F, "telugu"), (0x0C80, 0x0CFF, "kannada"), (0x0D00, 0x0D7F, "malayalam"),
    (0x0D80, 0x0DFF, "sinhala"), (0x0E00, 0x0E7F, "thai"), (0x0E80, 0x0EFF, "lao"),
    (0x0F00, 0x0FFF, "tibetan"), (0x1000, 0x109F, "myanmar"), (0x10A0, 0x10FF, "georgian"),
    (0x1100, 0x11FF, "hangul"), (0x1200, 0x139F, "ethiopic"), (0x1780, 0x17FF, "khmer"),
    (0x3040, 0x30FF, "kana"), (0x31F0, 0x31FF, "kana"), (0xFF66, 0xFF9F, "kana"),
    (0x3130, 0x318F, "hangul"), (0xAC00, 0xD7AF, "hangul"),
    (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"), (0xF900, 0xFAFF, "han"),
    (0x20000, 0x2FA1F, "han"),
)

# one script, one language (where a script serves several, its main one: the warning only needs
# "not a language the model covers", and these all are absent from English-only models)
_SCRIPT_LANGUAGE: dict[str, str] = {
    "greek": "el", "armenian": "hy", "hebrew": "he", "devanagari": "hi", "bengali": "bn",
    "gurmukhi": "pa", "gujarati": "gu", "oriya": "or", "tamil": "ta", "telugu": "te",
    "kannada": "kn", "malayalam": "ml", "sinhala": "si", "thai": "th", "lao": "lo",
    "tibetan": "bo", "myanmar": "my", "georgian": "ka", "hangul": "ko", "ethiopic": "am",
    "khmer": "km",
}

# A Han character carries about a word; weigh it against Latin letters so that a Chinese query
# with one English product name still counts as Chinese.
_CJK_WEIGHT = 3
_DOMINANT_SHARE = 0.6
_MIN_LETTERS = 3  # weighted; fewer says nothing


@lru_cache(maxsize=8192)
def _script(char: str) -> str | None:
    if not char.isalpha():
        return None
    code = ord(char)
    if code < 0x80:
        return "latin"
    for start, end, script in _SCRIPT_RANGES:
        if start <= code <= end:
            return script
    return "other"


def _cyrillic_language(text: str) -> str:
    letters = set(text.lower())
    if letters & set("ђјљњћџ"):
        return "sr"
    if letters & set("ѓќѕ"):
        return "mk"
    if letters & set("әғқңұһ"):
        return "kk"
    if "ў" in letters:
        return "be"
    if letters & set("їєґ") or ("і" in letters and not letters & set("ыэъ")):
        return "uk"
    if letters & set("өү"):
        return "mn"
    return "ru"


def _arabic_language(text: str) -> str:
    letters = set(text)
    if letters & set("ٹڈڑںے"):
        return "ur"
    if letters & set("پچژگ\u06cc\u06a9"):  # Persian pe, che, zhe, gaf, Farsi yeh, keheh
        return "fa"
    return "ar"


# --- Latin script: function words and telling letters --------------------------------------------

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words only (articles, pronouns, prepositions, auxiliaries, question words): they occur
# in any text of a language whatever its topic, and almost never as names or technical terms.
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words("the and is are was were be been to of in on for with from by at as it its this that these "
                 "those what which who whom whose why how when where there their they them we our you your "
                 "he she his her i my me do does did can could should would will shall not no or if an a "
                 "about into than then but have has had may might must just also only any some all"),
    "es": _words("el la los las un una unos unas y o de del al en con por para que qué como cómo cuál "
                 "cuáles cuando cuándo donde dónde quién porque pero más mi mis tu tus su sus es son está "
                 "están estoy hay ser puedo puede pueden muy se lo le les nos yo él ella ellos este esta "
                 "esto estos estas ese esa sin sobre también tengo tiene hacer"),
    "fr": _words("le la les un une des du de et ou que qui quoi comment pourquoi quand où est sont "
                 "suis être avoir ai a ont dans pour par sur avec sans ce cette ces mon ma mes ton ta tes "
                 "son sa ses notre nos votre vos leur leurs je tu il elle nous vous ils elles pas ne plus "
                 "très aussi mais au aux puis peux peut faire"),
    "de": _words("der die das den dem des ein eine einen einem einer und oder ist sind war waren bin "
                 "sein haben hat hatte nicht kein keine mit von zu zum zur auf für aus bei nach über "
                 "unter ich du er sie es wir ihr mein meine dein deine wie was warum wann wo wer welche "
                 "kann können muss soll auch noch nur schon sehr aber dass sich"),
    "it": _words("il lo la gli le un uno una di del della dei delle da dal e ed è sono sei che chi cosa "
                 "perché quando dove come quale per con su tra fra non più anche ma mio mia miei tuo "
                 "tua suo sua io tu lui lei noi voi loro questo questa quello quella posso può essere "
                 "ho hai ha nel nella alla"),
    "pt": _words("o os a as um uma uns umas e ou de do da dos das em no na nos nas por para com sem "
                 "que quê como quando onde porque qual mas mais muito meu minha meus seu sua eu você "
                 "ele ela nós eles elas é são está estão ser ter tem posso pode fazer não também isso "
                 "este esta pelo pela"),
    "nl": _words("de het een en of is zijn was waren ben van in op voor met naar uit bij aan om te "
                 "niet geen dat die dit deze wat waarom hoe wanneer waar wie welke ik jij je hij zij "
                 "wij we jullie mijn jouw kan kunnen moet ook maar nog wel er"),
    "sv": _words("och i att det som en ett är var på av för med till från inte jag du han hon vi ni "
                 "de den min mitt din hur vad varför när var vem vilken kan ska har hade också men eller"),
    "da": _words("og i at det som en et er var på af for med til fra ikke jeg du han hun vi de den "
                 "min mit din hvordan hvad hvorfor hvornår hvor hvem kan skal har havde også men eller"),
    "nb": _words("og i at det som en et er var på av for med til fra ikke jeg du han hun vi de den "
                 "min mitt din hvordan hva hvorfor når hvor hvem kan skal har hadde også men eller"),
    "pl": _words("i w z na do od że nie się jest są był była to ten ta te jak co czy dlaczego kiedy "
                 "gdzie kto który która mój moja twój jego jej ja ty on ona my wy oni dla po przez "
                 "ale też już tylko mogę można"),
    "cs": _words("a v ve z na do od že ne se je jsou byl byla to ten ta jak co proč kdy kde kdo který "
                 "která můj moje tvůj jeho její já ty on ona my vy oni pro po ale také už jen mohu"),
    "ro": _words("și în la de cu pe din pentru că nu se este sunt era un o ce cum când unde cine care "
                 "meu mea eu tu el ea noi voi ei dar mai și sau pot poate"),
    "tr": _words("ve bir bu şu o ile için de da mi mı mu mü ne nasıl neden niçin nerede kim hangi "
                 "ben sen biz siz onlar benim senin değil var yok çok daha ama gibi olan"),
    "id": _words("dan yang di ke dari untuk dengan pada ini itu adalah tidak bisa saya kamu anda dia "
                 "kami kita mereka apa bagaimana mengapa kapan dimana siapa juga atau tetapi sudah akan"),
    "fi": _words("ja on ei se että kuin mutta tai minä sinä hän me te he mikä miten miksi milloin "
                 "missä kuka joka ovat oli olla voi myös vain tämä tuo"),
    "hu": _words("a az és egy hogy nem is van vagy de meg mi mit hogyan miért mikor hol ki melyik én "
                 "te ő mi ti ők az ez azt ezt volt lesz csak már még"),
}

# Letters one language (or one close pair) uses and English never does; each kind counts once.
_TELLING_LETTERS: dict[str, str] = {
    "es": "ñ¿¡", "de": "ß", "pt": "ãõ", "fr": "œùû", "pl": "łąęśźżćń", "cs": "ěřů", "ro": "ășț",
    "tr": "ğış", "hu": "őű", "da": "øæ", "nb": "øæ", "sv": "å", "is": "ðþ", "vi": "ơưđ",
}

# Languages so close in function words that they are told apart among themselves by the few words
# they do not share, and from the rest as one.
_FAMILY = {"da": "nordic", "nb": "nordic", "sv": "nordic"}

_WORD = re.compile(r"[^\W\d_]+")
_MIN_EVIDENCE = 2  # function words plus telling letters; one alone is too easily a name
_MIN_FUNCTION_SHARE = 0.3


def _latin_language(text: str) -> str | None:
    lowered = text.lower()
    words = _WORD.findall(lowered)
    function_words: Counter[str] = Counter()  # occurrences, for the share of the text they make
    scores: Counter[str] = Counter()  # distinct words, so that one repeated "el" weighs once
    distinct = set(words)
    for language, stopwords in _STOPWORDS.items():
        function_words[language] = sum(1 for word in words if word in stopwords)
        scores[language] = len(distinct & stopwords)
    for language, letters in _TELLING_LETTERS.items():
        scores[language] += sum(1 for letter in letters if letter in lowered)
    ranked = scores.most_common()
    if not ranked:
        return None
    best, score = ranked[0]
    family = _FAMILY.get(best)
    runner_up = max((s for lang, s in ranked[1:] if family is None or _FAMILY.get(lang) != family),
                    default=0)
    # a clear winner only: twice the evidence of the next language, else say nothing
    if score < _MIN_EVIDENCE or score < 2 * runner_up:
        return None
    # Any sentence is about a third function words; an English phrase with a foreign name in it
    # ("El Niño weather pattern effects") is not, and must not read as foreign.
    if best != "en" and function_words[best] < _MIN_FUNCTION_SHARE * len(words):
        return None
    return best


def detect(text: str, max_chars: int = 4000) -> str | None:
    """The ISO 639-1 code of the language ``text`` is written in, or ``None`` when unsure (too
    short, only names and technical terms, or a mix). Reads the first ``max_chars`` characters."""
    sample = text[:max_chars]
    weights: Counter[str] = Counter()
    for char in sample:
        script = _script(char)
        if script is not None:
            weights[script] += _CJK_WEIGHT if script in ("han", "kana", "hangul") else 1
    # Japanese is Han plus kana: judge the two together, then tell them apart
    cjk = weights["han"] + weights["kana"]
    if cjk:
        kana_share = weights["kana"] / cjk
        del weights["han"], weights["kana"]
        weights["ja" if kana_share >= 0.05 else "zh"] = cjk
    total = sum(weights.values())
    if total < _MIN_LETTERS:
        return None
    script, weight = weights.most_common(1)[0]
    if weight < _DOMINANT_SHARE * total:
        return None
    if script in ("ja", "zh"):
        return script
    if script == "latin":
        return _latin_language(sample)
    if script == "cyrillic":
        return _cyrillic_language(sample)
    if script == "arabic":
        return _arabic_language(sample)
    return _SCRIPT_LANGUAGE.get(script)


def dominant_language(texts: Sequence[str], sample: int = 1000) -> tuple[str, int, int] | None:
    """``(code, texts in it, texts whose language could be told)`` for the language most of
    ``texts`` are in, or ``None`` when none is: it must hold more than half of the texts whose
    language could be told, and those at least a quarter of all texts looked at. At most
    ``sample`` texts, evenly spread, are looked at."""
    if not texts:
        return None
    step = max(1, len(texts) // sample)
    looked = [texts[i] for i in range(0, len(texts), step)][:sample]
    found = Counter(code for code in map(detect, looked) if code is not None)
    told = sum(found.values())
    if not told or 4 * told < len(looked):
        return None
    code, count = found.most_common(1)[0]
    if 2 * count <= told:
        return None
    return code, count, told


# --- models -------------------------------------------------------------------------------------

def check_code(code: str) -> str:
    """``code`` lower-cased if it is a known ISO 639-1 code, else ``InvalidInput`` with examples."""
    wanted = code.strip().lower()
    if wanted not in LANGUAGE_NAMES:
        raise InvalidInput(f"unknown language code {code!r}: use a two-letter ISO 639-1 code such as "
                           "en (English), es (Spanish), de (German), fr (French), zh (Chinese), "
                           "ja (Japanese), ru (Russian), ar (Arabic)")
    return wanted


def model_info(model: str) -> catalog.ModelInfo | None:
    """The catalogue entry a spec, an embedder id (``local:all-MiniLM-L6-v2@384``) or a
    fingerprint (``...@384#onnx-fp32``) names; a local folder by its folder name. ``None`` for
    models the catalogue does not know."""
    from .registry import parse_spec

    spec = model.partition("#")[0].strip()
    base, sep, dims = spec.rpartition("@")
    if sep and dims.isdigit():
        spec = base
    try:
        scheme, name = parse_spec(spec)
    except ModelNotAvailable:
        return None
    folder_name = re.split(r"[\\/]", name.rstrip("/\\"))[-1]
    return catalog.find(scheme, name) or catalog.find(scheme, folder_name)


def _suggestions(code: str) -> list[str]:
    """One local and one remote catalogue model trained for ``code``, local first (free)."""
    from .availability import status

    covering = catalog.covering(code)
    out = []
    local = next((m for m in covering if m.local), None)
    if local is not None:
        usable, _ = status(local)
        out.append(f"{local.spec} ({'found on this machine' if usable else 'needs its folder'})")
    remote = next((m for m in covering if not m.local), None)
    if remote is not None:
        out.append(remote.spec)
    return out


def coverage_warning(model: str | catalog.ModelInfo, texts: str | Sequence[str]) -> str | None:
    """One sentence when ``texts`` (a query as one string, or a collection's texts) are mostly
    in a language ``model`` was not trained for, naming catalogue models that were; ``None``
    otherwise, and always ``None`` for models whose languages the catalogue does not know.
    ``model`` is a spec, an embedder id such as ``local:all-MiniLM-L6-v2@384``, or an entry."""
    info = model if isinstance(model, catalog.ModelInfo) else model_info(model)
    if info is None or not info.languages:
        return None
    if isinstance(texts, str):
        code = detect(texts)
        subject = "the query looks"
    else:
        found = dominant_language(texts)
        code = found[0] if found else None
        subject = "the text looks" if len(texts) == 1 else (
            f"most of the texts ({found[1]} of {found[2]}) look" if found else "")
    if code is None or info.covers_language(code):
        return None
    name = LANGUAGE_NAMES.get(code, code)
    trained = "is trained on English only" if info.languages == ("en",) else f"is not trained on {name}"
    advice = _suggestions(code)
    tail = f": try {' or '.join(advice)}" if advice else ""
    return f"{subject} {name}; {info.spec} {trained}{tail}"
