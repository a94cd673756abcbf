"""A registry with the installed tools plus a slow test tool, registered in process as a third party would."""

import threading
import time
import types

import pytest

from orchestrator.service import Service
from orchestrator.tools import Catalogue
from sage_core import HaltDecision, IRPPlugin, IRPState, Registry, ToolSpec, hookimpl

STEP_S = 0.05


class Sleepy(IRPPlugin):
    """Counts down slowly (STEP_S per step) so a test can cancel it mid-run; counts its steps."""

    name, version = "sleepy", "1.0.0"
    steps_taken = 0
    lock = threading.Lock()

    def init_state(self, x0, ctx):
        if x0 < 0:
            raise ValueError(f"start must be >= 0, got {x0}")
        return IRPState(x=float(x0))

    def energy(self, state):
        return state.x

    def halt_state(self, state):
        return HaltDecision("zero", "counted down to zero") if state.x == 0 else None

    def step(self, state, budget=None):
        time.sleep(STEP_S)
        with Sleepy.lock:
            Sleepy.steps_taken += 1
        return state.evolve(x=max(state.x - 1.0, 0.0), step=state.step + 1)

    @staticmethod
    def solution(state):
        return state.x


COUNT_DOWN = ToolSpec(
    name="count_down", description="Count down from start, slowly.", plugin="sleepy",
    input_schema={"type": "object", "properties": {"start": {"type": "integer"}}, "required": ["start"],
                  "additionalProperties": False},
    prepare=lambda args: (args["start"], {}), answer_schema={"type": "number"},
)


def third_party():
    module = types.ModuleType("sagetest_sleepy")
    module.sage_register_plugins = hookimpl(lambda register: register(Sleepy))
    module.sage_register_tools = hookimpl(lambda register: register(COUNT_DOWN))
    return module


@pytest.fixture(scope="module")
def registry():
    registry = Registry(strict=True, disabled=())
    registry.load_entrypoints()
    assert registry.add(third_party(), name="sagetest_sleepy")
    return registry


@pytest.fixture
def catalogue(registry, tmp_path):
    catalogue = Catalogue(registry, service=Service(tmp_path / "sessions", registry=registry))
    yield catalogue
    catalogue.close()
