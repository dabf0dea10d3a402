"""README's Limitations quote the served models' answers to a few short reviews. Each figure is checked here
against the archives `make serve` registers, so a retrained model cannot leave README describing another one."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.infer import load_scorer, score
from model.logit import sigmoid

README = Path(__file__).resolve().parents[2] / "README.md"

# (text, the model whose answer README quotes, what it quotes: "probability" or "unknown", the figure as written)
QUOTED = (
    ("not good", "sentiment", "probability", "0.17"),
    ("good", "sentiment", "probability", "0.99"),
    ("not bad at all", "sentiment", "probability", "0.04"),
    ("not bad at all", "sentiment-bigram", "probability", "0.01"),
    ("meh", "sentiment", "probability", "0.43"),
    ("🎬🍿", "sentiment", "probability", "0.43"),
    ("映画はとても良かった", "sentiment", "probability", "0.44"),
    ("meh", "sentiment-bigram", "probability", "0.55"),
    ("😀🎬 loved it 👍🏽 ❤️", "sentiment", "unknown", "0.6"),
    ("😀🎬 loved it 👍🏽 ❤️", "sentiment", "probability", "0.93"),
    ("Un film magnifique, je l'ai adoré.", "sentiment", "unknown", "0.1"),
    ("Un film magnifique, je l'ai adoré.", "sentiment", "probability", "0.21"),
    ("ok", "sentiment", "probability", "0.25"),
)
WRONG_BOTH = ("not bad", "never boring")  # README: both models get these wrong (negative, though positive)


@pytest.fixture(scope="module")
def limitations() -> str:
    text = README.read_text()
    start = text.index("## Limitations")
    return text[start : text.index("\n## ", start + 1)]


@pytest.fixture(scope="module")
def scorers(model_dir, bigram_model_dir):
    return {"sentiment": load_scorer(model_dir), "sentiment-bigram": load_scorer(bigram_model_dir)}


@pytest.mark.parametrize(("text", "model", "what", "figure"), QUOTED)
def test_each_quoted_figure_is_the_served_answer(limitations, scorers, text, model, what, figure):
    assert f'"{text}"' in limitations, text
    assert figure in limitations
    [answer] = score(scorers[model], [text])
    value = sigmoid(answer.logit) if what == "probability" else answer.unknown_tokens / answer.tokens
    assert f"{value:.{len(figure) - 2}f}" == figure, (text, model, value)


def test_the_pairs_named_wrong_are_wrong_for_both_models(limitations, scorers):
    for text in WRONG_BOTH:
        assert f'"{text}"' in limitations
        for scorer in scorers.values():
            assert score(scorer, [text])[0].logit < 0, text
