"""Short reviews whose label turns on word order: negation, contrast and intensifiers, each with the label a reader
gives it. tests/unit/test_negation.py holds the served answer to them; 1 is positive, 0 negative."""

from __future__ import annotations

CASES: tuple[tuple[str, int], ...] = (
    # not
    ("not good", 0),
    ("not bad", 1),
    ("not bad at all", 1),
    ("The movie was not good.", 0),
    ("This film is not bad, actually quite fun.", 1),
    ("It was not funny and not interesting.", 0),
    ("I did not enjoy it.", 0),
    ("I did not like this movie at all.", 0),
    ("Not a bad way to spend an evening.", 1),
    ("The acting is not great.", 0),
    ("not worth your time", 0),
    ("I could not stop laughing.", 1),
    # never
    ("I will never watch this again.", 0),
    ("Never boring for a minute.", 1),
    ("It never gets dull.", 1),
    ("This movie never works.", 0),
    ("I never wanted it to end.", 1),
    # no
    ("No plot, no characters, no point.", 0),
    ("There is no reason to see this film.", 0),
    ("No complaints, a wonderful film.", 1),
    ("no fun at all", 0),
    # hardly
    ("hardly a masterpiece", 0),
    ("The jokes hardly ever land.", 0),
    ("I could hardly take my eyes off the screen.", 1),
    # but, contrast
    ("The cast is great but the film is boring.", 0),
    ("The plot is thin but the film is a joy.", 1),
    ("Beautiful to look at, but dull and empty.", 0),
    ("Slow start, but it becomes a wonderful film.", 1),
    ("It tries hard, but it fails.", 0),
    ("Predictable, yet charming and warm.", 1),
    ("I expected to hate it, but I loved it.", 1),
    ("I wanted to love it, but it was a mess.", 0),
    ("Although the effects are good, the story is awful.", 0),
    ("Although it is long, it is a great movie.", 1),
    ("Despite a weak ending, a moving and funny film.", 1),
    ("Despite good actors, the film is a bore.", 0),
    # intensifiers
    ("very good", 1),
    ("very bad", 0),
    ("really really good", 1),
    ("extremely boring", 0),
    ("absolutely wonderful", 1),
    ("incredibly stupid", 0),
    ("so bad it hurts", 0),
    ("pretty good", 1),
    ("utterly pointless", 0),
    ("too long and too boring", 0),
    ("a truly great film", 1),
    ("terribly dull", 0),
)
