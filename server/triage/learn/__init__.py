"""Learning from traffic: every decision recorded (`_records`) in a store (`_store`: the interface; `_sqlite`: the
default), human corrections beside them, the classifier retrained from them behind a poisoning guard (`_retrain`,
`_trainer`), head versions installed and hot-reloaded (`_heads`), and everything exported as JSONL (`_export`)."""

from triage.learn._export import export
from triage.learn._heads import DEFAULT_VERSION, HeadReloader, HeadVersions, heads_dir, make_reloader
from triage.learn._records import DecisionRecord, RequestStatus, SpeculationOutcome
from triage.learn._retrain import RetrainReport, retrain, split_corrections
from triage.learn._sqlite import SQLiteStore, open_store
from triage.learn._store import Correction, LabeledText, Stats, Store
from triage.learn._trainer import BaseData, HeadTrainer, Trainer, base_data, default_trainer

__all__ = [
    "DEFAULT_VERSION",
    "BaseData",
    "Correction",
    "DecisionRecord",
    "HeadReloader",
    "HeadTrainer",
    "HeadVersions",
    "LabeledText",
    "RequestStatus",
    "RetrainReport",
    "SQLiteStore",
    "SpeculationOutcome",
    "Stats",
    "Store",
    "Trainer",
    "base_data",
    "default_trainer",
    "export",
    "heads_dir",
    "make_reloader",
    "open_store",
    "retrain",
    "split_corrections",
]
