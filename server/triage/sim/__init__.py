"""A simulated OpenAI-compatible provider (configurable speed, length, errors and mid-stream faults) that tests and
benchmarks run on loopback, and users point a routing config at to load-test it for free; and `BackgroundServer`,
which runs an ASGI app (the simulator, Triage itself) on a loopback port in a thread."""

from triage.sim._app import create_sim_app
from triage.sim._background import BackgroundServer
from triage.sim._config import SimBehaviour, SimConfig, load_sim_config
from triage.sim._state import SimState

__all__ = ["BackgroundServer", "SimBehaviour", "SimConfig", "SimState", "create_sim_app", "load_sim_config"]
