"""The local classifier: a static-embedding encoder, lexical signals and hashed n-grams (`_features`, `_lexical`,
`_prototypes`), a calibrated linear softmax head (`_head`, `_softmax`), and the classifier that runs it on a request
in well under a millisecond (`_classifier`)."""

from triage.classify.local._classifier import LocalClassifier, default_head_path
from triage.classify.local._features import Encoder, FeatureSpec, Featurizer
from triage.classify.local._head import Head, train_head
from triage.classify.local._memory import CorrectionMemory

__all__ = [
    "CorrectionMemory",
    "Encoder",
    "FeatureSpec",
    "Featurizer",
    "Head",
    "LocalClassifier",
    "default_head_path",
    "train_head",
]
