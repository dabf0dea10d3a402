"""One tokenization code path: training, serving, the batch job and the device produce identical token ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tokenizers import Tokenizer, normalizers

from bench.reviews import load_reviews
from handler.codec import decode
from model.config import ARTIFACTS, ModelConfig
from model.data import DATA_DIR, read_jsonl
from model.text import (
    TOKENIZER_FILE,
    build_tokenizer,
    library_token_ids,
    load_tokenizer,
    pack,
    save_tokenizer,
    token_ids,
    wrap,
)
from tests.catalogue import CASES, LIMITS
from tests.conftest import ROOT

TOKENIZER = ARTIFACTS / "tokenizer"
# Texts at the edges of the ASCII route's definition: markup variants, every ASCII control character, the added
# tokens' own text, underscores and runs of punctuation, a review far beyond max_tokens, nothing at all.
EDGES = [
    "<br/>a<br>b<br  />c<BR />d<br\t/>e<br\n>f<br\x0b/>g<br\x0c/>h<br\x1c/>i<b\x00r />j",
    "".join(map(chr, range(128))),
    "".join(f"word{chr(c)}next " for c in range(128)),
    "a\x1cb\x1dc\x1ed\x1fe\x7ff \x85g",
    "great\x00film \x01\x07 really\x1b",
    "x [PAD] y [UNK] z [pad] [unk]",
    "snake_case __dunder__ _ don't!!! ...wow?! (sic) 1,000 $5 #1 a--b",
    "word " * 3000,
    "",
    " \t\r\n ",
    # ...and beyond ASCII: the words holding other characters go to the library, the rest of the text does not
    "<br\u00a0/>a<br \u3000/>b café<br />x ﬁlm<br/>",
    "a\u00a0b c\u2003d e\x85f g\u2028h \u0301i j\u0301 ko\u00adop \ufeffbom zw\u200dj \ufffd",
    "great😀film 👍🏽 ❤️ Ⅻ ² ½ ÀÉÎÕÜ ß ǅ İstanbul ΣΑΣ Straße",
    "素晴らしい映画" * 400 + " then 1,000 words " * 10,
    "[PAD]é [UNK]ü",
    "é" + " word" * 2000,
]


def catalogue_texts() -> list[str]:
    """The valid texts of the bad-input catalogue, as the handler decodes them."""
    texts = []
    for case in CASES:
        if case.status == 200:
            texts.extend(decode(case.body, case.content_type, LIMITS).texts())
    return texts


def test_build_save_reload_gives_the_ids_training_used(tmp_path):
    texts = load_reviews(300)
    cfg = ModelConfig()
    built = build_tokenizer(texts[:200], cfg.vocab_size, cfg.min_frequency, cfg.max_tokens)
    save_tokenizer(built, tmp_path)
    reloaded = load_tokenizer(tmp_path)
    probe = texts + EDGES + catalogue_texts()
    assert built.ascii_vocab is not None and reloaded.ascii_vocab is not None
    assert token_ids(reloaded, probe) == token_ids(built, probe)  # serving's ids == training's
    assert library_token_ids(reloaded, probe) == token_ids(built, probe)  # and the device's
    assert reloaded.max_tokens == cfg.max_tokens


def test_the_archive_ships_the_tokenizer_training_saved(model_dir):
    shipped = model_dir / "tokenizer" / TOKENIZER_FILE
    assert shipped.read_bytes() == (TOKENIZER / TOKENIZER_FILE).read_bytes()
    Tokenizer.from_file(str(shipped))  # what the device and the browser load


def test_the_shipped_tokenizer_takes_the_ascii_route():
    tok = load_tokenizer(TOKENIZER)
    assert tok.ascii_vocab is not None, "tokenizer.json no longer fits model.text.ASCII_ROUTE_DEFINITION"
    assert tok.max_tokens == ModelConfig.from_json(ARTIFACTS / "config.json").max_tokens


@pytest.mark.parametrize("split", ["train", "unsup"])
def test_token_ids_equal_the_library_on_every_imdb_review(split, monkeypatch):
    """model.text against `tokenizers` itself, on every review of the split."""
    path = DATA_DIR / "imdb" / f"{split}.jsonl.gz"
    if not path.exists():
        pytest.skip(f"{path} is not there")
    tok = load_tokenizer(TOKENIZER)
    texts = [row["text"] for row in read_jsonl(path)] + EDGES + catalogue_texts()
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")  # the reference ids on every core
    expected = library_token_ids(tok, texts)
    actual = token_ids(tok, texts)
    mismatched = [i for i, (a, b) in enumerate(zip(actual, expected, strict=True)) if a != b]
    assert not mismatched, f"{len(mismatched)} texts differ, the first at {mismatched[:5]}"


def test_non_ascii_texts_and_the_catalogue_match_the_library():
    tok = load_tokenizer(TOKENIZER)
    texts = ["Café crème, naïve señor", "素晴らしい映画", "😀🎬 loved it 👍🏽", "ﬁlm Ⅻ ²", *EDGES, *catalogue_texts()]
    assert token_ids(tok, texts) == library_token_ids(tok, texts)


def test_another_definition_goes_to_the_library(tmp_path):
    state = json.loads((TOKENIZER / TOKENIZER_FILE).read_text())
    backend = Tokenizer.from_str(json.dumps(state))
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok = wrap(backend)
    texts = ["Great film.<br /><br />LOVED it", "great\x00film", *load_reviews(20)]
    assert tok.ascii_vocab is None
    assert token_ids(tok, texts) == library_token_ids(tok, texts)


def test_markup_is_ignored_and_case_folded():
    tok = load_tokenizer(TOKENIZER)
    [a, b] = token_ids(tok, ["Great film.<br /><br />LOVED it", "great film. loved it"])
    assert a == b
    assert tok.unk_id not in a


def test_control_characters_are_normalised_away():
    tok = load_tokenizer(TOKENIZER)
    [a, b] = token_ids(tok, ["great\x00 film\x07 \x1bloved it\x7f", "great film loved it"])
    assert a == b


def test_long_reviews_are_truncated_not_refused():
    tok = load_tokenizer(TOKENIZER)
    [ids, other] = token_ids(tok, ["word " * 10 * tok.max_tokens, "wörd " * 10 * tok.max_tokens])
    assert len(ids) == len(other) == tok.max_tokens


def test_offsets_mark_each_review():
    ids, offsets = pack([[5, 6, 7], [], [8]])
    assert ids.tolist() == [5, 6, 7, 8] and offsets.tolist() == [0, 3, 3]
    empty, none = pack([])
    assert empty.numel() == 0 and none.numel() == 0


def test_loading_the_tokenizer_leaves_the_environment_and_transformers_alone():
    """A notebook that imports the model code keeps its environment, and transformers keeps torch."""
    code = (
        "import os, sys; before = dict(os.environ); "
        "from model.infer import load_scorer; s = load_scorer(sys.argv[1]); "
        "assert dict(os.environ) == before, 'environment changed'; "
        "assert 'transformers' not in sys.modules, 'transformers imported'"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("USE_TORCH", "TRANSFORMERS_NO_ADVISORY_WARNINGS")}
    subprocess.run([sys.executable, "-c", code, str(ARTIFACTS)], cwd=ROOT, env=env, check=True)
