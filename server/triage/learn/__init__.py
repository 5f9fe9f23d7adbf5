"""Learning from traffic: every decision recorded (`_records`) in a store (`_store`: the interface; `_sqlite`: the
default; `_postgres`: shared by many instances, its schema in `_migrations`), human corrections beside them, the
classifier retrained from them behind a poisoning guard (`_retrain`, `_trainer`), head versions installed and
hot-reloaded (`_heads`; in the database: `_pg_heads`), and everything exported as JSONL (`_export`). `_open` picks
the store and the head versions a config means."""

from triage.learn._export import export
from triage.learn._heads import DEFAULT_VERSION, HeadReloader, HeadStore, HeadVersions, heads_dir
from triage.learn._open import head_store, make_reloader, make_store, open_store, upgrade_schema
from triage.learn._records import DecisionRecord, RequestStatus, SpeculationOutcome
from triage.learn._retrain import RetrainReport, retrain, split_corrections
from triage.learn._sqlite import SQLiteStore
from triage.learn._store import Correction, LabeledText, Stats, Store
from triage.learn._trainer import BaseData, HeadTrainer, Trainer, base_data, default_trainer

__all__ = [
    "DEFAULT_VERSION",
    "BaseData",
    "Correction",
    "DecisionRecord",
    "HeadReloader",
    "HeadStore",
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
    "head_store",
    "heads_dir",
    "make_reloader",
    "make_store",
    "open_store",
    "retrain",
    "split_corrections",
    "upgrade_schema",
]
