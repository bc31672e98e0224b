"""A tiny randomly initialised BERT cross-encoder saved to a folder, for tests (no download).

2 layers, hidden 32, one output logit, a WordPiece vocabulary of ~200 tokens written in code
(whole words of the test texts, letters and ``##`` letters so any English text tokenises). The
folder has the Hugging Face sequence-classification layout that ``CrossEncoder`` reads:
``config.json``, ``model.safetensors``, ``tokenizer.json``.
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
WORDS = (
    "the", "a", "an", "of", "to", "in", "is", "and", "for", "on", "with", "how", "my", "your",
    "what", "why", "fast", "slow", "website", "page", "site", "speed", "cache", "images", "load",
    "loading", "performance", "fix", "bug", "error", "git", "commit", "branch", "plant", "plants",
    "water", "light", "kyoto", "bus", "buses", "travel", "lisbon", "tram", "coffee", "cat", "dog",
    "python", "code", "test", "search",
)


def build_tiny_cross_encoder(folder: Path, seed: int = 0, num_labels: int = 1) -> Path:
    """A 2-layer, hidden-32 ``BertForSequenceClassification`` with random weights (``seed``)
    and its WordPiece ``tokenizer.json`` in ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab: dict[str, int] = {}
    for token in [*SPECIALS, *letters, *(f"##{c}" for c in letters), *WORDS, *(f"##{w}" for w in ("s", "ing", "ed"))]:
        vocab.setdefault(token, len(vocab))
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.save(str(folder / "tokenizer.json"))

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=128, num_labels=num_labels,
                        pad_token_id=vocab["[PAD]"], initializer_range=0.5)
    # initializer_range 0.5 instead of BERT's 0.02: with tiny random weights every pair would
    # score ~the same (differences of 1e-4), too close for an order that tests can rely on.
    model = BertForSequenceClassification(config)
    model.eval()
    model.save_pretrained(folder)
    return folder


def torch_scores(folder: Path, query: str, passages: list[str]) -> list[float]:
    """The reference: the saved model run by transformers + torch, sigmoid of the logit."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    out = []
    for passage in passages:  # one pair at a time: no padding in the reference
        enc = tokenizer.encode(query, passage)
        inputs = {"input_ids": torch.tensor([enc.ids]), "attention_mask": torch.tensor([enc.attention_mask]),
                  "token_type_ids": torch.tensor([enc.type_ids])}
        with torch.no_grad():
            logit = model(**inputs).logits[0, 0].item()
        out.append(float(torch.sigmoid(torch.tensor(logit)).item()))
    return out
