"""Offline language detection on real sentences, and the warning when a model was not trained
for the language of a query or a collection."""

from __future__ import annotations

import pytest

from semkit.errors import InvalidInput
from semkit.models import catalog
from semkit.models.languages import check_code, coverage_warning, detect, dominant_language, model_info

BUNDLED_ID = "local:all-MiniLM-L6-v2@384"
SPANISH_QUERY = "¿cómo puedo acelerar mi sitio web lento?"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SPANISH_QUERY, "es"),
        ("El gato duerme en el sofá", "es"),
        ("Wie kann ich meine langsame Webseite schneller machen?", "de"),
        ("Die Katze schläft auf dem Sofa", "de"),
        ("Comment puis-je accélérer mon site web lent ?", "fr"),
        ("Come posso velocizzare il mio sito web lento?", "it"),
        ("Como posso acelerar o meu site lento?", "pt"),
        ("Hoe kan ik mijn trage website sneller maken?", "nl"),
        ("Hur kan jag göra min webbplats snabbare?", "sv"),
        ("Jak mogę przyspieszyć moją wolną stronę?", "pl"),
        ("如何加快我的网站速度", "zh"),
        ("ウェブサイトを速くするにはどうすればいいですか", "ja"),
        ("웹사이트 속도를 높이는 방법", "ko"),
        ("Как ускорить медленный сайт?", "ru"),
        ("Як пришвидшити повільний сайт? Ї є ґ", "uk"),
        ("كيف يمكنني تسريع موقعي؟", "ar"),
        ("Πώς μπορώ να επιταχύνω τον ιστότοπό μου;", "el"),
        ("איך אני יכול להאיץ את האתר שלי?", "he"),
        ("मैं अपनी वेबसाइट को तेज़ कैसे करूँ?", "hi"),
        ("ฉันจะทำให้เว็บไซต์เร็วขึ้นได้อย่างไร", "th"),
        ("how to fix slow website", "en"),
        ("Die Hard with a Vengeance", "en"),
        ("Lisbon travel: trams, pastéis de nata and the Alfama", "en"),
    ],
)
def test_detects_the_language_of_real_sentences(text: str, expected: str) -> None:
    assert detect(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "how to fix slow website", "kubernetes pod crashloop", "die hard sequel", "git rebase onto main",
        "docker compose up fails on mac", "El Niño weather pattern effects", "Das Boot movie review",
        "La Paz travel guide", "José Peña", "Le Mans race results", "is it raining in Lisbon",
        "set up nginx as a reverse proxy", "café au lait recipe", "pip install fails with error",
        "Python pandas groupby", "ok", "", "   ", "12345 !!!",
    ],
)
def test_english_and_technical_queries_never_read_as_foreign(text: str) -> None:
    assert detect(text) in ("en", None)


def test_a_mix_of_scripts_is_unsure() -> None:
    assert detect("Как ускорить website performance tuning guide") is None


def test_the_projects_own_english_docs_read_as_english() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "examples" / "docs"
    texts = [block for path in sorted(root.glob("*.md")) + sorted(root.glob("*.txt"))
             for block in path.read_text(encoding="utf-8").split("\n\n") if block.strip()]
    assert len(texts) > 20
    assert {detect(t) for t in texts} <= {"en", None}
    found = dominant_language(texts)
    assert found is not None and found[0] == "en"


def test_dominant_language_needs_a_majority() -> None:
    german = "Wie kann ich meine langsame Webseite schneller machen?"
    english = "How can I make my slow website faster than it is now?"
    assert dominant_language([german] * 3 + [english]) == ("de", 3, 4)
    assert dominant_language([german, english]) is None
    assert dominant_language(["kubernetes", "pod", "crashloop", "nginx", german]) is None  # 1 told of 5
    assert dominant_language([]) is None


@pytest.mark.parametrize(
    ("query", "language"),
    [
        (SPANISH_QUERY, "Spanish"),
        ("Wie kann ich meine langsame Webseite schneller machen?", "German"),
        ("如何加快我的网站速度", "Chinese"),
    ],
)
def test_warning_fires_for_foreign_queries_on_the_bundled_english_model(query: str, language: str) -> None:
    warning = coverage_warning(BUNDLED_ID, query)
    assert warning is not None
    assert warning.startswith(f"the query looks {language}; local:all-MiniLM-L6-v2 is trained on English only: try ")
    # it names a local and a remote model that do cover the language
    assert "local:paraphrase-multilingual-MiniLM-L12-v2 (" in warning
    assert "openai:text-embedding-3-small" in warning


def test_the_exact_sentence_for_the_flagship_spanish_query() -> None:
    assert coverage_warning(BUNDLED_ID, SPANISH_QUERY) == (
        "the query looks Spanish; local:all-MiniLM-L6-v2 is trained on English only: try "
        "local:paraphrase-multilingual-MiniLM-L12-v2 (needs its folder) or openai:text-embedding-3-small"
    )


@pytest.mark.parametrize(
    "model",
    ["local", BUNDLED_ID, "local:all-MiniLM-L6-v2@384#onnx-fp32", "local:sentence-transformers/all-MiniLM-L6-v2"],
)
def test_warning_reads_specs_ids_and_fingerprints(model: str) -> None:
    assert coverage_warning(model, SPANISH_QUERY) is not None
    assert coverage_warning(model, "how to fix slow website") is None
    assert coverage_warning(model, "kubernetes pod crashloop") is None


@pytest.mark.parametrize(
    "model",
    [
        "local:paraphrase-multilingual-MiniLM-L12-v2@384",
        "local:/models/paraphrase-multilingual-MiniLM-L12-v2@384",  # a folder named after the model
        "openai:text-embedding-3-small@1536",
        "cohere:embed-multilingual-v3.0@1024",
        "local:bge-m3@1024",
    ],
)
def test_no_warning_for_multilingual_models(model: str) -> None:
    assert coverage_warning(model, SPANISH_QUERY) is None
    assert coverage_warning(model, "如何加快我的网站速度") is None


@pytest.mark.parametrize(
    "model",
    ["local:/srv/models/my-finetune@384", "http:nomic-embed-text@768", "openai:text-embedding-ada-002@1536",
     "nosuch:model", "", "clip"],
)
def test_no_false_alarm_for_models_whose_languages_are_unknown(model: str) -> None:
    assert coverage_warning(model, SPANISH_QUERY) is None


def test_a_list_model_names_the_uncovered_language_and_a_model_that_covers_it() -> None:
    # Bengali is not among paraphrase-multilingual's 50 languages; multilingual-e5-small covers ~100
    warning = coverage_warning("local:paraphrase-multilingual-MiniLM-L12-v2", "আমি কীভাবে আমার ওয়েবসাইট দ্রুত করব?")
    assert warning is not None
    assert "is not trained on Bengali" in warning
    assert "local:multilingual-e5-small (" in warning


def test_warning_on_a_collections_texts() -> None:
    german = ["Die Katze schläft auf dem Sofa", "Wie kann ich meine langsame Webseite schneller machen?",
              "Der Zug nach Berlin hat eine Stunde Verspätung und wir warten noch"]
    warning = coverage_warning(BUNDLED_ID, [*german, "kubernetes"])
    assert warning is not None and warning.startswith("most of the texts (3 of 3) look German; ")
    assert coverage_warning(BUNDLED_ID, ["How do I make my slow website faster?"] * 5 + german[:1]) is None
    entry = catalog.find("local", "all-MiniLM-L6-v2")
    assert entry is not None and coverage_warning(entry, german[:1]) is not None


def test_model_info_resolves_ids_and_folders() -> None:
    assert (info := model_info("local:all-MiniLM-L6-v2@384#onnx-int8")) and info.name == "all-MiniLM-L6-v2"
    assert (info := model_info("local:./models/bge-m3")) and info.name == "bge-m3"
    assert model_info("local:/somewhere/unknown-model@384") is None


def test_check_code() -> None:
    assert check_code(" ES ") == "es"
    with pytest.raises(InvalidInput, match=r"unknown language code 'xx'.*es \(Spanish\)"):
        check_code("xx")
