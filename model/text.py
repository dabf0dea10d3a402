"""The one tokenization code path: training, the TorchServe handler and the batch job all call these.

`tokenizer.json` is the definition of tokenization: it is loaded here with the Hugging Face `tokenizers`
library, as the device and the browser load it. ASCII text (nine in ten IMDB reviews whole, and the ASCII
words of the others) takes an exact pure-Python route through the same definition, at a fraction of the
library's cost: the library builds a normalised string with per-character alignments, offsets and token
strings that this model never reads. Only the words holding other characters go to the library. The route is
enabled only when tokenizer.json holds the normaliser, pre-tokeniser and model it implements;
tests/unit/test_text.py proves identical ids on every IMDB review.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer

logger = logging.getLogger(__name__)
PAD, UNK = "[PAD]", "[UNK]"
TOKENIZER_FILE = "tokenizer.json"
BREAK = r"<br\s*/?>"  # IMDB's line-break markup

# The part of tokenizer.json that the ASCII route implements; any other tokenizer.json is left to the library.
ASCII_ROUTE_DEFINITION = {
    "normalizer": {
        "type": "Sequence",
        "normalizers": [
            {"type": "Replace", "pattern": {"Regex": BREAK}, "content": " "},
            {
                "type": "BertNormalizer",
                "clean_text": True,
                "handle_chinese_chars": True,
                "strip_accents": True,
                "lowercase": True,
            },
        ],
    },
    "pre_tokenizer": {"type": "Whitespace"},
    "post_processor": None,
    "padding": None,
}
# The same steps on ASCII text: the Replace above (Oniguruma's \s is Python's ASCII \s there); BertNormalizer
# deletes control characters other than tab, newline and carriage return (accents, Chinese characters and case
# beyond ASCII do not occur); the Whitespace pre-tokeniser splits `\w+|[^\w\s]+`, where \w and \s are ASCII's.
_BREAK = re.compile(BREAK, re.ASCII)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WORDS = re.compile(r"\w+|[^\w\s]+", re.ASCII)
_SPACES = re.compile(r"[ \t\n\r]+")  # what BertNormalizer keeps as space: other ASCII controls it deletes


@dataclass(frozen=True)
class TextTokenizer:
    """tokenizer.json through the `tokenizers` library, and the ASCII route's vocabulary when it applies."""

    backend: Tokenizer
    max_tokens: int  # tokenizer.json's own truncation
    ascii_vocab: dict[str, int] | None  # None: every text goes to the library
    unk_id: int
    added: tuple[str, ...]  # the added tokens' texts, which the library matches in the raw text first

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)


def _normalizer() -> normalizers.Normalizer:
    """IMDB's `<br />` markup and control characters are normalised away; case and accents are folded."""
    return normalizers.Sequence(
        [
            normalizers.Replace(Regex(BREAK), " "),
            normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True),
        ]
    )


def build_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int, max_tokens: int) -> TextTokenizer:
    """Train a word-level tokenizer; reviews longer than `max_tokens` are truncated, not refused."""
    backend = Tokenizer(WordLevel(unk_token=UNK))
    backend.normalizer = _normalizer()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD, UNK])
    backend.train_from_iterator(texts, trainer=trainer)
    backend.enable_truncation(max_tokens)
    return wrap(backend)


def wrap(backend: Tokenizer) -> TextTokenizer:
    """The tokenizer with its ASCII route, if tokenizer.json is the definition that route implements."""
    state = json.loads(backend.to_str())
    truncation = state["truncation"]
    if truncation is None or truncation["direction"] != "Right":
        raise ValueError("tokenizer.json must truncate on the right: reviews are truncated, never refused")
    model = state["model"]
    fits = (
        all(state[part] == spec for part, spec in ASCII_ROUTE_DEFINITION.items())
        and model["type"] == "WordLevel"
        and all(not token["normalized"] for token in state["added_tokens"])
    )
    if not fits:
        logger.warning("tokenizer.json is not the definition of the ASCII route: every text goes to the library")
    return TextTokenizer(
        backend=backend,
        max_tokens=truncation["max_length"],
        ascii_vocab=backend.get_vocab(with_added_tokens=True) if fits else None,
        unk_id=backend.token_to_id(model["unk_token"]) if fits else -1,
        added=tuple(token["content"] for token in state["added_tokens"]),
    )


def save_tokenizer(tokenizer: TextTokenizer, directory: Path) -> None:
    """tokenizer.json, plus the configuration files with which `transformers` loads the same directory."""
    from transformers import PreTrainedTokenizerFast  # training only: serving never imports transformers

    directory = Path(directory)
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.backend,
        unk_token=UNK,
        pad_token=PAD,
        model_max_length=tokenizer.max_tokens,
        truncation_side="right",
    ).save_pretrained(str(directory))
    tokenizer.backend.save(str(directory / TOKENIZER_FILE))  # exactly the tokenizer that training used


def load_tokenizer(directory: Path) -> TextTokenizer:
    """Load tokenizer.json from a directory; local files only, never a hub."""
    return wrap(Tokenizer.from_file(str(Path(directory) / TOKENIZER_FILE)))


def _ascii_ids(text: str, vocab: dict[str, int], unk_id: int) -> list[int]:
    """Ids of an ASCII text whose markup is already replaced: the rest of the definition, in Python."""
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
    get = vocab.get
    return [get(word, unk_id) for word in _WORDS.findall(text.lower())]


def _pieces(tokenizer: TextTokenizer, text: str) -> list[str] | None:
    """The text with its markup replaced, cut where the ASCII route and the library take over from each other:
    one piece when it is all ASCII, else runs of ASCII words and the words holding other characters, in order.
    None when the whole text must go to the library.

    The definition never joins what ASCII space separates: the normaliser's steps after the markup's act on one
    character at a time and keep spaces, and the pre-tokeniser splits at spaces. So a review's ids are its
    pieces' ids end to end, and only the words holding other characters need the library."""
    if tokenizer.ascii_vocab is None or any(a in text for a in tokenizer.added):
        return None
    if "<br" in text:
        text = _BREAK.sub(" ", text)
        if "<br" in text:  # markup that the definition's \s (any Unicode space) may match and ASCII's does not
            return None
    if text.isascii():
        return [text]
    pieces, run = [], []
    for word in _SPACES.split(text):
        if word.isascii():
            run.append(word)
        else:
            pieces.extend((" ".join(run), word))
            run = []
    pieces.append(" ".join(run))
    return pieces


def token_ids(tokenizer: TextTokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, truncated at tokenizer.json's max_tokens: ASCII by the ASCII route, the rest in
    one library call."""
    vocab, unk_id, max_tokens = tokenizer.ascii_vocab, tokenizer.unk_id, tokenizer.max_tokens
    parts: list[list[list[int] | int]] = []  # per text: ids from the ASCII route, or an index into `rest`
    rest: list[str] = []  # for the library: whole texts and the words holding characters beyond ASCII
    for text in texts:
        pieces = _pieces(tokenizer, text)
        if pieces is None:
            parts.append([len(rest)])
            rest.append(text)
            continue
        ids: list[list[int] | int] = []
        for piece in pieces:
            if piece.isascii():
                ids.append(_ascii_ids(piece, vocab, unk_id))
            else:
                ids.append(len(rest))
                rest.append(piece)
        parts.append(ids)
    done = [e.ids for e in tokenizer.backend.encode_batch_fast(rest, add_special_tokens=False)] if rest else []
    return [
        p[0][:max_tokens] if len(p) == 1 and not isinstance(p[0], int) else _joined(p, done, max_tokens) for p in parts
    ]


def _joined(parts: list[list[int] | int], done: list[list[int]], max_tokens: int) -> list[int]:
    return list(chain.from_iterable(done[p] if isinstance(p, int) else p for p in parts))[:max_tokens]


def library_token_ids(tokenizer: TextTokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids from the `tokenizers` library alone: what the device and the browser compute."""
    return [e.ids for e in tokenizer.backend.encode_batch_fast(list(texts), add_special_tokens=False)]


def pack(batch_ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists -> the model's ragged input: (flat ids, offset where each review starts).

    numpy reads the ids straight from the lists into one array, where torch.tensor on a list of Python ints
    converts and type-checks every element through Python."""
    lengths = np.fromiter(map(len, batch_ids), dtype=np.int64, count=len(batch_ids))
    offsets = np.zeros(len(batch_ids), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    flat = np.fromiter(chain.from_iterable(batch_ids), dtype=np.int64, count=int(lengths.sum()))
    return torch.from_numpy(flat), torch.from_numpy(offsets)


def encode_batch(tokenizer: TextTokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> model input."""
    return pack(token_ids(tokenizer, texts))
