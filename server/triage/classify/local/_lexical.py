"""Cheap lexical signals for the local classifier: what a bag of words misses about the *shape* of a request.

A static word encoder sees "play", "now" and "my" as words among others. These features name what generalises
across domains: an action verb in command position (after any "could you please"), a question in FAQ form, the
user's own data ("my calendar"), live time ("right now", "tonight"), clock times and dates, how many numbers there
are, math notation, code, requests for derivation, the identifiers and parameters of API-style requests.

Word and phrase lists are matched as sets of 1-3-grams (one pass, no regex per list); the rest are small regexes.
All of it costs ~30 µs for a typical request. Every feature is a float in [0, ~2]; the head learns their weights.
The list is part of the features a head is trained on: bump `_features.FEATURE_VERSION` when it changes, and heads
trained on another refuse to load (see `_features.FeatureSpec.check`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

__all__ = ["LEXICAL_NAMES", "follow_up_score", "lexical_features", "lexical_matrix", "strip_politeness"]

_I = re.IGNORECASE


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Greetings and framing before the verb that carries the request: "hey, could you please ..." -> "...".
_POLITE = re.compile(
    r"^(?:(?:hey|hi|hello|ok|okay|so|um|please|pls|kindly|yo|alexa|siri|assistant)\b[\s,!.]*)*"
    r"(?:(?:can|could|would|will|wo)(?:n't)? (?:you|u|ya)(?: please| kindly| just| also)? "
    r"|i (?:want|need|would like|'d like|wanna|d like|'m looking|am looking) (?:you )?(?:to |for )?"
    r"|i want |i need |let's |lets |help me |go ahead and |try to |please |just |quickly )*",
    _I,
)

# Verbs that, in command position, ask the assistant to act rather than to answer.
_ACTIONS = _words(
    "play put turn switch set book reserve order call text send email message remind add remove delete cancel "
    "schedule open close lock unlock start stop pause resume skip find search look show get check track buy pay "
    "transfer rate give make navigate dim brighten mute unmute increase decrease raise lower wake shuffle repeat "
    "cast share save download upload post tweet reply forward archive mark update change move invite accept "
    "decline join run deploy restart fetch retrieve list query create clear dial read rent reschedule confirm "
    "activate deactivate enable disable install uninstall sync record stream queue reorder renew redeem request "
    "arrange print scan ping notify refund erase empty"
)
_QUESTION_WORDS = _words("what who whom whose when where which why how whats what's is are was were do does did am")

# Phrase lists, matched on lower-cased words.
_PHRASES: dict[str, str] = {
    "first_person": "my | mine | me | i'm | i've",
    "live": "now | today | tonight | tomorrow | currently | current | latest | live | real time | realtime | "
    "this morning | this afternoon | this evening | this week | this weekend | this month | next week | next month | "
    "next weekend | upcoming | at the moment | yesterday | recent | recently | trending | breaking",
    "arithmetic": "how many | how much | in total | total | each | per | average | left | remaining | more than | "
    "less than | fewer | times as | twice | half | third | thirds | quarter | quarters | ratio | fraction | altogether",
    "math_words": "solve | prove | derive | integral | integrate | derivative | equation | theorem | probability | "
    "modulo | factorial | prime | matrix | vector | polynomial | logarithm | sqrt | limit | series | sequence | "
    "inequality | lemma",
    "code_words": "def | class | import | return | function | functions | method | methods | array | arrays | list | "
    "lists | tuple | tuples | string | strings | dict | dictionary | integer | integers | regex | recursion | "
    "recursive | algorithm | complexity | compile | exception | bug | debug | linked list | binary tree | sql | "
    "script | program | python | javascript | typescript | java | rust | golang | kotlin | haskell | html | css | "
    "json | loop | variable | boolean",
    "derive": "step by step | show that | show your | show how | explain why | justify | derive | analyze | analyse | "
    "compare | evaluate | estimate | plan | design | optimize | optimise | tradeoff | tradeoffs | trade offs | "
    "pros and cons | reason through | work out | figure out | calculate | compute | determine",
    "nearby": "near me | nearby | around here | close to me | in my area | in town | closest | nearest",
    "framing": "i need | i'd like | i would like | i want | help me | for me | please | i'm looking for | "
    "i am looking for | can you | could you | would you | will you",
    "contact": "phone number | contact details | contact info | contact | contacts | address of | email of | "
    "number of | birthday of",
    "money_words": "dollars | cents | euros | pounds | percent | price | cost | costs",
    "weekday": "monday | tuesday | wednesday | thursday | friday | saturday | sunday | weekend",
    "affirmation": "yes | yeah | yep | yup | no | nope | ok | okay | sure | thanks | thank you | thx | cool | great | "
    "nice | good | perfect | correct | right | exactly | fine | awesome",
}
_MONTHS = _words(
    "jan feb mar apr may jun jul aug sep sept oct nov dec january february march april june july august september "
    "october november december"
)

_PATTERNS: dict[str, re.Pattern[str]] = {
    # Support/FAQ phrasing: asking how something works or why something happened, even about "my" account.
    "faq": re.compile(
        r"^(how (do|can|should|long|much does|does|often) (i|we|you|it)|why (did|does|is|was|were|has|hasn't|can't|"
        r"won't|didn't|isn't|am|do|are|would)|can i|do you|is it|is there|are there|what happens|what should i|"
        r"what do i|what are the|where can i|am i able|will (my|i|the)|i (can't|cannot|couldn't|don't|didn't|haven't|"
        r"was|got|think|received|made|lost|forgot|see))\b"
    ),
    # The user's own data, which only a tool can read.
    "my_data": re.compile(
        r"\bmy (calendar|schedule|meetings?|alarms?|reminders?|e-?mails?|inbox|messages?|texts?|contacts?|"
        r"playlists?|photos?|pictures?|files?|documents?|notes?|lists?|orders?|packages?|deliver(y|ies)|balance|"
        r"accounts?|transactions?|steps|heart|sleep|location|car|flight|booking|reservation|subscription|bills?|"
        r"stocks?|portfolio|tasks?|to-?do|library|music|feed|notifications?|voicemails?)\b"
    ),
    # These three open with one character class, a lookbehind choosing the alternative (see `identifier`).
    "clock": re.compile(r"[\donm](?:(?<=\d) ?[ap]\.?m\b|(?<=\d):\d\d|(?<=o)'clock|(?<=n)oon|(?<=m)idnight)"),
    "date_numeric": re.compile(r"\d(?:\d{3}-\d\d-\d\d|/\d{1,2}/\d)"),
    "money": re.compile(r"[$€£¥\d](?:(?<=[$€£¥])\s?\d|(?<=\d)\s?%)"),
    "math_notation": re.compile(r"\d\s*[-+*/^=<>]\s*\d|[a-z]\s*\^\s*\d|[∑∫√≤≥≠π]|\\frac|\$[^$]+\$"),
    "code_block": re.compile(r"```|\(\)|[{};]|^\s*(def|class|import|for|if|return) ", re.M),
    # Case matters here: snake_case and camelCase names are source code.
    # Searched from the underscore or the capital (see `identifier` for why), a lookbehind for the letter before it.
    "code_names": re.compile(r"[_A-Z](?<=[a-z][_A-Z])[a-z]"),
    "write_code": re.compile(
        r"\b(write|implement|create|code|build|develop|define|complete)\b[^.?!\n]{0,50}\b(function|program|script|"
        r"class|method|algorithm|query|code|regex|component|module|test)s?\b"
    ),
    "parameters": re.compile(
        r"in (celsius|fahrenheit|metric|imperial)|with (the )?(id|name|parameters?)\b|\bid\s*[=:]"
    ),
    "quoted": re.compile(r"'[^']{2,40}'|\"[^\"]{2,40}\""),
    "ends_question": re.compile(r"\?\s*$"),
    # Identifiers, paths, addresses, emails, URLs: the arguments of an API call. Case matters (acronyms).
    # Every alternative is written from one of the few characters in the class that opens the pattern, with a
    # lookbehind for what comes before it: re searches a pattern that opens with a character class by a fast scan
    # for that class, but tries an alternation of different openings at every position of the text (~8 µs a
    # request, and nearly every request has the capital or full stop that lets this pattern run).
    "identifier": re.compile(
        r"""[\d@:./~A-Z](?:
            (?<=[A-Za-z]\d) | (?<=[A-Za-z]-\d)    # a letter, then a digit: A1, v-2
          | (?<=\d)\.\d+\.\d                       # a version: 1.2.3
          | (?<=@)\w                               # a handle or an email: @name, a@b
          | (?<=:)// | (?<=\w:)[/\\]               # a URL (://) or a drive (c:/, C:\)
          | (?<=[./~])(?<!\S.)\w                   # a word opening with . / or ~: .env, /usr, ~user
          | (?<=[A-Z])[A-Z]                        # an acronym
        )""",
        re.VERBOSE,
    ),
    # The question a word problem ends on.
    "quantity_question": re.compile(
        r"\b(how (many|much|long|far|old|fast)|what (is|was|will be) the (total|sum|difference|average|percentage|"
        r"ratio|value|area|cost|price|number))\b[^.!?]*\?\s*$"
    ),
    # A narrative about third parties, as word problems open. Case matters (a name).
    "narrative": re.compile(
        r"^(?:[A-Z][a-z]+ (?:has|had|is|was|buys|bought|wants|sells|sold|makes|made|runs|reads|earns|spends|gets|"
        r"got|needs|went|goes|and [A-Z][a-z]+)|(?:A|An|The|There|Each|If|In|At)\b)"
    ),
    "possessive_contact": re.compile(r"\b[a-z]+'s (phone|number|cell|mobile|address|e-?mail|birthday)\b"),
    "this_media": re.compile(
        r"\b(this|that|the current|current) (song|track|tune|album|artist|playlist|book|novel|movie|film|podcast|"
        r"episode|station|video|game)\b"
    ),
    "order_status": re.compile(r"\bmy\b[^.?!]{0,30}\b(be delivered|arrive|ship|shipped|out for delivery|on its way)\b"),
    "verb_me": re.compile(r"^\w+ (me|us)\b"),
    # Implicit multi-hop questions (issue 16): several facts chained, which a bag of words reads as one trivia
    # question. "Could X have done Y" (not "could you have it ..."), the lifetimes of two things compared, an entity
    # named through another ("the country where X was born"), two entities compared or matched.
    "counterfactual": re.compile(
        r"\b(could|would|might) (?!(?:you|u|i|we|it|this|that|they|there)\b)[a-z0-9'.\- ]{2,60}? have "
        r"(?!to\b|a\b|an\b|the\b|my\b|any\b|some\b)[a-z]+"
    ),
    "lifetime": re.compile(
        r"\b(still alive|alive when|alive to see|born before|born after|died before|died after|in (?:his|her|their) "
        r"lifetime)\b|\b(when|before|after|while|during|by the time)\b[^.?!]{1,60}\b(?:was|were) (born|founded|"
        r"invented|built|elected|released|published|formed|opened|discovered|crowned|written|signed)\b"
    ),
    "nested_relation": re.compile(
        r"\bthe (country|city|state|nation|town|team|club|band|group|company|person|man|woman|author|writer|director|"
        r"actor|actress|singer|composer|painter|artist|president|king|queen|leader|capital|language|currency|"
        r"university|school|film|movie|book|novel|album|song|river|mountain|country's|city's)\b[^.?!]{0,12}?\b(where|that|"
        r"which|who|whose|in which|of which)\b"
    ),
    "comparison_pair": re.compile(
        r"\b(older|younger|taller|shorter|bigger|larger|smaller|longer|earlier|later|first|farther|further|heavier|"
        r"higher|deeper|faster|slower|richer|closer)\b[^.?!]{0,60} or\b|\b(older|younger|taller|heavier|earlier|"
        r"bigger|larger|longer) than\b|\bboth [^.?!]{1,60}\band\b|\bthe same (nationality|country|age|year|"
        r"decade|century|city|team|height|language|continent)\b"
    ),
    "estimation": re.compile(
        r"\b(roughly|approximately|estimate|ballpark|order of magnitude|rough guess|back of the envelope)\b|\bhow "
        r"(many|much|long|far)\b[^.?!]{1,60}\b(would|could|are there|would it take|does it take|fit)\b"
    ),
    # Work on a text the request carries (a translation, a rewrite, a summary): a cheap model's job, however much
    # its opening verb sounds like a command.
    "text_task": re.compile(
        r"^(re-?write|rephrase|reword|paraphrase|summari[sz]e|translate|proofread|shorten|simplify|edit|polish|"
        r"correct|improve|make (?:this|it) (?:sound|more|less|shorter|longer)|turn this into|put this into|what does "
        r"this (?:mean|say))\b"
    ),
}
# Patterns that match the original text (case kept); the others see it lower-cased; `faq`, `verb_me` and
# `text_task` see the body after politeness is stripped.
_CASED = _words("identifier narrative code_names code_block quoted ends_question")
_ON_BODY = frozenset({"faq", "verb_me", "text_task"})


@dataclass(frozen=True, slots=True)
class _Hint:
    """What every match of a pattern contains: one of `literals`, or (`digit`) a decimal digit, or (`upper`) an
    ASCII capital. A pattern is searched only when its text has one: an unanchored regex tries every position of
    the text (~20 ns each), a substring test is a fast scan, and most requests hold none of them. Anchored
    patterns, and ones whose search is already a fast scan, need no hint."""

    literals: tuple[str, ...] = ()
    digit: bool = False
    upper: bool = False


_HINTS: dict[str, _Hint] = {
    "counterfactual": _Hint(("could ", "would ", "might ")),
    "lifetime": _Hint(("alive", "born", "died", "lifetime", "when", "before", "after", "while", "during", "by the ")),
    "nested_relation": _Hint(("the ",)),
    "comparison_pair": _Hint((" or", " than", "both ", "the same ")),
    "estimation": _Hint(("rough", "approximately", "estimate", "ballpark", "magnitude", "envelope", "how ")),
    "my_data": _Hint(("my ",)),
    "clock": _Hint(("o'clock", "noon", "midnight"), digit=True),
    "date_numeric": _Hint(digit=True),
    "money": _Hint(digit=True),
    "math_notation": _Hint(("∑", "∫", "√", "≤", "≥", "≠", "π", "\\frac", "$"), digit=True),
    "code_block": _Hint(("```", "()", "{", "}", ";", "def ", "class ", "import ", "for ", "if ", "return ")),
    "code_names": _Hint(("_",), upper=True),
    "write_code": _Hint(("write", "implement", "create", "code", "build", "develop", "define", "complete")),
    "parameters": _Hint(("celsius", "fahrenheit", "metric", "imperial", "with ", "id")),
    "identifier": _Hint(("@", ":", ".", "/", "~"), digit=True, upper=True),
    "quantity_question": _Hint(("how ", "what ")),
    "possessive_contact": _Hint(("'s ",)),
    "this_media": _Hint(("this ", "that ", "current ")),
    "order_status": _Hint(("deliver", "arrive", "ship", "on its way")),
}
_ANY = _Hint(("",))  # the empty string is in every text: always searched
_TEXT, _LOWER, _BODY = 0, 1, 2
_SIGNALS = tuple(
    (pattern, _TEXT if name in _CASED else _BODY if name in _ON_BODY else _LOWER, _HINTS.get(name, _ANY))
    for name, pattern in _PATTERNS.items()
)
_DIGIT = re.compile(r"\d")  # what `\d` in the patterns matches: any decimal digit, not only 0-9

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NUMBER_WORDS = _words(
    "one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred thousand "
    "dozen half double triple"
)
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_HEAD, _TAIL = 500, 300


def _phrase_table() -> dict[str, tuple[int, ...]]:
    """Each phrase (its words joined by one space) and the indices of the lists that hold it."""
    table: dict[str, tuple[int, ...]] = {}
    for i, phrases in enumerate(_PHRASES.values()):
        for phrase in phrases.split("|"):
            key = " ".join(phrase.split())
            table[key] = (*table.get(key, ()), i)
    return table


# Keyed by strings, not tuples of words: the one-word phrases of a text are then one set intersection, with no
# tuple made per word.
_TABLE = _phrase_table()
_SINGLE_WORDS = frozenset(key for key in _TABLE if " " not in key)
# First words of the phrases of two or three words: only the n-grams opening with one of them can be in the table.
_OPENERS = frozenset(key.split()[0] for key in _TABLE if " " in key)
_AFFIRMATION = list(_PHRASES).index("affirmation")
_EXTRA = (
    "action_first",
    "question_first",
    "affirmation_first",
    "date",
    "numbers",
    "many_numbers",
    "sentences",
    "length",
    "very_short",
)
LEXICAL_NAMES: tuple[str, ...] = (*_PHRASES, *_PATTERNS, *_EXTRA)


def strip_politeness(text: str) -> str:
    """The request without greetings and "could you please"-style framing, lower-cased."""
    return _without_politeness(text.strip().lower())


def _without_politeness(lower: str) -> str:
    # The pattern is anchored: one match at the start, where `sub` would also try every later position.
    match = _POLITE.match(lower)
    return lower[match.end() :] if match else lower


def lexical_features(text: str, body: str | None = None) -> list[float]:
    """The features of one text, in `LEXICAL_NAMES` order. `body`: `strip_politeness(text)` if the caller has it."""
    text = text.strip()
    if len(text) > _HEAD + _TAIL:  # the shape of a request shows at its ends; this bounds the cost (~0.2 ms)
        text, body = text[:_HEAD] + "\n" + text[-_TAIL:], None
    lower = text.lower()
    if body is None:
        body = _without_politeness(lower)
    words = _WORD.findall(lower)
    phrases = [0.0] * len(_PHRASES)
    found = _SINGLE_WORDS.intersection(words)
    if not _OPENERS.isdisjoint(words):
        found = found.union(" ".join(words[i : i + n]) for i, w in enumerate(words) if w in _OPENERS for n in (2, 3))
    for phrase in found:
        for i in _TABLE.get(phrase, ()):
            phrases[i] = 1.0
    digit = _DIGIT.search(lower) is not None
    patterns = _pattern_features((text, lower, body), digit=digit, upper=text != lower)
    first = _WORD.match(body)
    first_word = first.group(0) if first else ""
    numbers = len(_NUMBER_WORDS.intersection(words)) + (len(_NUMBER.findall(text)) if digit else 0)
    # A month followed by a number; most texts have neither, and the pairs cost a loop in Python.
    dated = digit and not _MONTHS.isdisjoint(words) and any(
        w in _MONTHS and n[:1].isdigit() for w, n in pairwise(words)
    )
    n_words = len(words)
    return [
        *phrases,
        *patterns,
        1.0 if first_word in _ACTIONS else 0.0,
        1.0 if first_word in _QUESTION_WORDS else 0.0,
        1.0 if _AFFIRMATION in _TABLE.get(first_word, ()) else 0.0,
        1.0 if dated else 0.0,
        math.log1p(numbers) / 2,
        1.0 if numbers >= 3 else 0.0,
        min(len(_SENTENCE_END.findall(text)), 6) / 3,
        math.log1p(n_words) / 3,
        1.0 if n_words <= 3 else 0.0,
    ]


def _pattern_features(sources: tuple[str, str, str], *, digit: bool, upper: bool) -> list[float]:
    """One float per `_PATTERNS` entry; `sources`: the text, lower-cased, and its body; `digit`, `upper`: whether the
    text holds a decimal digit, an ASCII capital (a text with one differs from its lower-case form)."""
    out = []
    for pattern, source, hint in _SIGNALS:
        text = sources[source]
        possible = (hint.digit and digit) or (hint.upper and upper)
        for literal in () if possible else hint.literals:  # a plain loop: any() over a generator cost ~1 µs a pattern
            if literal in text:
                possible = True
                break
        out.append(1.0 if possible and pattern.search(text) else 0.0)
    return out


def lexical_matrix(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    return np.array([lexical_features(t) for t in texts], dtype=np.float32).reshape(len(texts), len(LEXICAL_NAMES))


# A turn that leans on the one before: opens with a connective ("and in Python?", "what about Boston?"), or is short
# and points back ("make it faster", "turn it off").
_CONNECTIVE = re.compile(
    r"^\s*(and|also|what about|how about|now|then|same|but|or|plus|instead|what if|ok(ay)?,? and|so|make it|do it|"
    r"again)\b",
    _I,
)
_ANAPHORA = re.compile(
    r"\b(it|that|this|those|these|them|one|ones|there|same|instead|too|also|again|another|more|"
    r"else|other)\b",
    _I,
)


def follow_up_score(text: str) -> float:
    """1.0 for a turn that reads as a follow-up, 0.5 for a bare fragment of up to three words, else 0.0."""
    words = len(text.split())
    if _CONNECTIVE.search(text) or (words <= 6 and _ANAPHORA.search(text)):
        return 1.0
    return 0.5 if words <= 3 else 0.0
