"""The local classifier: the shipped head, calibration, multi-turn context, retraining with weights, no network."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage._config import load_config
from triage._exceptions import ConfigError
from triage.classify import Classifier, ClassifyInput, LocalClassifier, load_exemplars
from triage.classify.local import Encoder, FeatureSpec, Featurizer
from triage.classify.local._head import Bags, Head, fit_head, fit_temperature, train_head
from triage.classify.local._lexical import _PATTERNS, _SIGNALS, follow_up_score
from triage.classify.local._softmax import log_softmax


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder.load()


@pytest.fixture(scope="module")
def local(encoder: Encoder) -> LocalClassifier:
    return LocalClassifier.load(encoder=encoder)


OBVIOUS = {
    "simple": [
        "What is the capital of France?",
        "Tell me a joke about cats",
        "thanks, that's great",
        "How do I reset my password?",
        "What does photosynthesis mean?",
    ],
    "reasoning": [
        "Write a Python function that returns the n-th prime number.",
        "A train travels 120 km in 1.5 hours and then 80 km in 2 hours. What is its average speed for the trip?",
        "Prove that the sum of two even integers is even.",
        "Why does this code raise a KeyError?\n```python\nd = {}\nprint(d['x'])\n```",
    ],
    "tool_use": [
        "Set an alarm for 6:45 tomorrow morning",
        "What's the weather in Berlin right now?",
        "Send a text to Maria saying I'll be late",
        "Turn off the lights in the living room",
        "Book a table for two at an Italian restaurant tonight",
    ],
}


def test_the_shipped_head_classifies_obvious_requests(local: LocalClassifier) -> None:
    assert isinstance(local, Classifier)
    assert set(local.categories) == {"simple", "reasoning", "tool_use"}
    for category, texts in OBVIOUS.items():
        for text in texts:
            decision = local.predict(ClassifyInput(text))
            assert decision.category == category, (text, decision.scores)
            assert decision.classifier == "local" and decision.layers[0].layer == "local"
            assert decision.confidence == max(decision.scores.values())
            assert abs(sum(decision.scores.values()) - 1) < 1e-6


async def test_classify_is_the_sync_predict(local: LocalClassifier) -> None:
    request = ClassifyInput("Play some jazz in the kitchen")
    decision = await local.classify(request)
    assert decision.category == local.predict(request).category == "tool_use"
    # A very long request still classifies (off the loop, on its head and tail).
    long = ClassifyInput("Please summarise this. " + "word " * 5000 + "\nNow write a Python function that sorts it.")
    assert (await local.classify(long)).category in local.categories


def test_loading_does_not_touch_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the local classifier tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    classifier = LocalClassifier.load()  # a fresh encoder too, not the module's fixture
    assert classifier.predict(ClassifyInput("What's the weather like today?")).category == "tool_use"


def test_calibrated_confidence_grows_with_the_raw_margin(local: LocalClassifier) -> None:
    head = local.head
    rng = np.random.default_rng(0)
    for _ in range(50):
        base = rng.normal(size=3)
        confidences = [float(head.calibrated(base * scale).max()) for scale in (0.1, 0.5, 1.0, 2.0, 4.0)]
        assert confidences == sorted(confidences)
        # Widening the gap between the top category and the others raises the top's confidence.
        top = int(np.argmax(base))
        widened = [float(head.calibrated(base + np.eye(3)[top] * gap)[top]) for gap in (0.0, 0.5, 1.0, 3.0)]
        assert widened == sorted(widened)
    # Scaling by 1/T never changes the category.
    z = rng.normal(size=(100, 3))
    assert (head.calibrated(z).argmax(axis=1) == z.argmax(axis=1)).all()


def test_fit_temperature_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(4000, 3))
    # Labels drawn from softmax(logits / 2): the calibrated temperature is 2.
    probabilities = np.exp(log_softmax(logits / 2.0))
    labels = np.array([rng.choice(3, p=p) for p in probabilities])
    assert fit_temperature(logits, labels, np.ones(len(labels))) == pytest.approx(2.0, rel=0.15)


def test_a_follow_up_keeps_its_topic(local: LocalClassifier) -> None:
    cases = [
        ("Write a function that reverses a linked list in Java", "and in Python?", "reasoning"),
        ("What's the weather in Paris today?", "and tomorrow?", "tool_use"),
        ("Who wrote Hamlet?", "and Macbeth?", "simple"),
        ("Play some Miles Davis in the kitchen", "something more upbeat please", "tool_use"),
    ]
    for prior, follow_up, category in cases:
        alone = local.predict(ClassifyInput(follow_up))
        with_context = local.predict(ClassifyInput(follow_up, (prior,)))
        assert with_context.category == category, (follow_up, with_context.scores)
        assert with_context.scores[category] > alone.scores[category]
    assert follow_up_score("and in Python?") == follow_up_score("make it faster") == 1.0
    assert follow_up_score("Turn off the kitchen lights") == 0.0
    # A clear new request is not dragged back to the previous topic.
    switched = local.predict(ClassifyInput("Turn off the kitchen lights", ("Write a quicksort in C",)))
    assert switched.category == "tool_use"
    # ClassifyInput.from_messages supplies the prior user turns.
    messages = [
        {"role": "user", "content": "Write a function that reverses a linked list in Java"},
        {"role": "assistant", "content": "Here it is: ..."},
        {"role": "user", "content": "and in Python?"},
    ]
    assert local.predict(ClassifyInput.from_messages(messages)).category == "reasoning"


def test_the_head_must_decide_between_the_routes(encoder: Encoder) -> None:
    with pytest.raises(ConfigError, match="retrain"):
        LocalClassifier.load(categories=["simple", "reasoning"], encoder=encoder)
    with pytest.raises(ConfigError, match="no head"):
        LocalClassifier.load("/nonexistent/head.npz", encoder=encoder)
    config = load_config()
    assert set(LocalClassifier.from_config(config).categories) == set(config.categories)


def test_train_save_load_and_weighted_corrections(encoder: Encoder, tmp_path: Path) -> None:
    featurizer = Featurizer(encoder, FeatureSpec())
    pairs = load_exemplars()[::3]
    texts, labels = [t for t, _ in pairs], [c for _, c in pairs]
    head = train_head(texts, labels, featurizer=featurizer, folds=3)
    assert head.temperature > 0 and head.meta["examples"] == len(texts)
    path = tmp_path / "head.npz"
    head.save(path)
    loaded = Head.load(path)
    batch = featurizer.batch(["Set a timer for ten minutes", "Who painted the Sistine Chapel ceiling?"])
    assert np.allclose(loaded.logits(batch), head.logits(batch), atol=1e-5)
    assert loaded.categories == head.categories and loaded.temperature == head.temperature

    # Reviewed corrections, weighted above the base data, move the head.
    correction = "How tall is the Eiffel Tower in feet right now?"
    classifier = LocalClassifier(loaded, encoder)
    before = classifier.predict(ClassifyInput(correction)).scores["tool_use"]
    corrected = train_head(
        [*texts, correction],
        [*labels, "tool_use"],
        sample_weight=[1.0] * len(texts) + [20.0],
        featurizer=featurizer,
        folds=0,
    )
    after = LocalClassifier(corrected, encoder).predict(ClassifyInput(correction)).scores["tool_use"]
    assert after > before and corrected.temperature == 1.0

    # A refit shrunk towards a previous head keeps what that head knew about data the refit never sees.
    few, unseen = slice(0, None, 10), slice(5, None, 10)
    refit = train_head(texts[few], labels[few], featurizer=featurizer, folds=0, prior=loaded)
    fresh = train_head(texts[few], labels[few], featurizer=featurizer, folds=0)
    kept = LocalClassifier(refit, encoder).predict_labels(texts[unseen])
    lost = LocalClassifier(fresh, encoder).predict_labels(texts[unseen])
    agree = [a == b for a, b in zip(kept, classifier.predict_labels(texts[unseen]), strict=True)]
    assert sum(agree) / len(agree) > 0.9
    assert sum(k == t for k, t in zip(kept, labels[unseen], strict=True)) > sum(
        f == t for f, t in zip(lost, labels[unseen], strict=True)
    )


def test_each_source_is_missing_from_exactly_one_bag_and_ungrouped_rows_from_none() -> None:
    groups = np.array([f"source{i % 10}" for i in range(200)] + [""] * 20)
    members = Bags(groups, count=4).members(seed=7)
    assert len(members) == 4
    missing_from = {name: [m for m, rows in enumerate(members) if name not in set(groups[rows])]
                    for name in set(groups) - {""}}
    assert all(len(where) == 1 for where in missing_from.values())
    for rows in members:
        assert set(np.flatnonzero(groups == "")) <= set(rows.tolist())
        kept = set(groups[rows]) - {""}
        assert all(set(np.flatnonzero(groups == g)) <= set(rows.tolist()) for g in kept)  # a source is whole or out
    assert [r.tolist() for r in Bags(groups, 4).members(seed=7)] == [r.tolist() for r in members]
    # Fewer sources than bags: one member, every row.
    (only,) = Bags(np.array(["a", "b", ""]), count=4).members(seed=0)
    assert only.tolist() == [0, 1, 2]


def test_a_bagged_head_scores_the_mean_of_its_members_logits(encoder: Encoder) -> None:
    spec = FeatureSpec(prototypes=0)  # members then share every feature, and their mean is exactly one head
    featurizer = Featurizer(encoder, spec)
    pairs = load_exemplars()[::4]
    texts = [t for t, _ in pairs]
    cats = ("simple", "reasoning", "tool_use")
    targets = np.array([cats.index(c) for _, c in pairs])
    weights = np.ones(len(texts))
    groups = np.array([f"source{i % 6}" if i % 5 else "" for i in range(len(texts))])
    batch = featurizer.batch(texts)
    bags = Bags(groups, count=3)
    bagged = fit_head(batch, targets, weights, cats, spec, 10.0, 0, bags=bags)
    members = [fit_head(batch.take(rows), targets[rows], weights[rows], cats, spec, 10.0, 0)
               for rows in bags.members(0)]
    probe = featurizer.batch(["Set a timer for ten minutes", "Prove that the square root of 2 is irrational",
                              "thanks!", "a word no source had: zyxwvut"])
    expected = np.mean([m.logits(probe) for m in members], axis=0)
    assert np.allclose(bagged.logits(probe), expected, atol=1e-4)

    head = train_head(texts, [c for _, c in pairs], featurizer=featurizer, folds=3, groups=groups.tolist(), bags=3)
    assert head.meta["bags"] == 3 and head.meta["calibration"] == "out of source"


def test_a_broken_head_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "head.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=r"classifier\.head"):
        Head.load(path)


# Pieces of text that make the lexical patterns match, and what sits around their matches.
_FRAGMENTS = [
    "my ", "My ", "calendar", "3", "\u0663", "pm", " ", "\n", "o'clock", "noon", "$", "5%", "x^2", "\u03c0", "\\frac",
    "```", "()", "{", ";", "def ", "foo_bar", "fooBar", "write a function", "in celsius", "with id", "id=", "'hi'",
    "?", "A1", "@x", "://", "c:/", " ./a", "1.2.3", "AB", "how many apples?", "john's phone", "this song",
    "my order arrive", "2024-01-31", "1/31/2", "the", "and", "\u0130",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=4), max_size=12).map("".join))
def test_a_lexical_pattern_matches_only_text_with_its_hint(text: str) -> None:
    """The hints that let `lexical_features` skip a pattern's search must hold wherever the pattern matches."""
    for (name, pattern), (_, _, hint) in zip(_PATTERNS.items(), _SIGNALS, strict=True):
        for source in (text, text.lower()):
            if pattern.search(source):
                assert (
                    any(h in source for h in hint.literals)
                    or (hint.digit and any(c.isdecimal() for c in source))
                    or (hint.upper and any("A" <= c <= "Z" for c in source))
                ), (name, source)


_TOKENIZER_FRAGMENTS = ["hello", " ", "  ", "\n", "<s>", "</s>", "<unk>", "\u2581", "\u00e9", "?"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_TOKENIZER_FRAGMENTS) | st.text(max_size=3), max_size=10).map("".join))
def test_token_ids_are_those_of_the_tokenizers_encode(encoder: Encoder, text: str) -> None:
    """`token_ids` calls the BPE model on text it normalises itself; `encode` is the reference."""
    assert encoder.token_ids(text) == encoder._tokenizer.encode(text, add_special_tokens=False).ids


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-60, 60), min_size=2, max_size=6), st.floats(0.05, 20))
def test_one_rows_calibration_is_the_batch_calibration(values: list[float], temperature: float) -> None:
    """The request path calibrates one row in Python floats; the batch path in numpy. libm and numpy may round
    exp and log differently in the last bit, no more."""
    head = Head(("a", "b"), FeatureSpec(), np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32),
                np.zeros(2, np.float32), temperature=temperature)
    logits = np.array(values)
    np.testing.assert_allclose(head.calibrated_one(logits), head.calibrated(logits), rtol=1e-13, atol=1e-300)


def test_prototype_features_are_best_and_top_means_over_the_runs() -> None:
    """The sort-and-one-product summary against its definition: per category, the best similarity and the mean
    of the top 3 within each run's prototypes, each averaged over the runs."""
    from triage.classify.local._prototypes import prototype_features

    rng = np.random.default_rng(0)
    n_classes, runs, k, dim = 3, 3, 20, 16
    prototypes = rng.normal(size=(n_classes, runs * k, dim)).astype(np.float32)
    embeddings = rng.normal(size=(5, dim)).astype(np.float32)
    got = prototype_features(embeddings, prototypes, runs=runs, top=3)
    similarities = (embeddings @ prototypes.reshape(-1, dim).T).reshape(5, n_classes, runs, k)
    ordered = np.sort(similarities, axis=-1)
    expected = np.stack([ordered[..., -1].mean(axis=-1), ordered[..., -3:].mean(axis=(-2, -1))], axis=-1)
    np.testing.assert_allclose(got, expected.reshape(5, 2 * n_classes), rtol=1e-5)
    one = np.empty(2 * n_classes, np.float32)
    prototype_features(embeddings[0], prototypes, runs=runs, top=3, out=one)
    np.testing.assert_allclose(one, got[0], rtol=1e-6)  # one row's product and many rows' may round apart


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_hashed_words_found_in_utf8_are_the_words_of_the_text(text: str) -> None:
    """The hashed block finds its words in the text's UTF-8 (its pattern is ASCII): the same words."""
    from triage.classify.local._features import _WORD, _WORD_BYTES

    assert _WORD_BYTES.findall(text.encode()) == [word.encode() for word in _WORD.findall(text)]


def test_phrases_of_several_words_count_and_their_first_word_alone_does_not() -> None:
    from triage.classify.local._lexical import LEXICAL_NAMES, lexical_features

    def fired(text: str) -> set[str]:
        return {name for name, value in zip(LEXICAL_NAMES, lexical_features(text), strict=True) if value}

    assert {"live", "derive"} <= fired("show the real time numbers step by step")
    assert "live" not in fired("it is real")
    assert {"affirmation", "affirmation_first"} <= fired("thanks a lot")
    assert "affirmation_first" not in fired("thank you so much")  # "thank you" is a phrase, "thank" is not


def test_no_token_joins_a_word_to_the_space_before_the_next(encoder: Encoder) -> None:
    """`token_ids` runs BPE on each "▁word" piece alone (and keeps their ids): exact only while no token of the
    vocabulary holds a "▁" after another character, so no merge can cross from one piece into the next."""
    vocabulary = encoder._tokenizer.get_vocab()
    assert not [token for token in vocabulary if "\u2581" in token.lstrip("\u2581")]


def test_token_ids_of_repeated_words_come_from_the_word_cache(encoder: Encoder) -> None:
    text = "play the next song and then play the one after"
    assert encoder.token_ids(text) == encoder._tokenizer.encode(text, add_special_tokens=False).ids
    before = encoder._cached_piece_ids.cache_info().hits
    assert encoder.token_ids(text) == encoder._tokenizer.encode(text, add_special_tokens=False).ids
    assert encoder._cached_piece_ids.cache_info().hits - before == len(text.split())


def test_long_pieces_are_tokenized_but_not_kept(encoder: Encoder) -> None:
    """A client sending long unique strings must not grow the word cache: only word-sized pieces are kept."""
    text = "a" * 40 + "b" * 40 + " short"
    size = encoder._cached_piece_ids.cache_info().currsize
    assert encoder.token_ids(text) == encoder._tokenizer.encode(text, add_special_tokens=False).ids
    assert encoder._cached_piece_ids.cache_info().currsize - size <= 1  # "▁short" at most
