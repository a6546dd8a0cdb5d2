"""Shared fixtures: real servers on loopback over real data directories."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from blindspots import Client
from blindspots_server.config import ServerConfig
from blindspots_server.scenario import Scenario, make_scenario, train_model
from blindspots_server.server.app import BlindspotsServer


def start_server(data_dir, **overrides) -> BlindspotsServer:
    """A real server bound to a free loopback port."""
    config = ServerConfig(data_dir=str(data_dir), host="127.0.0.1", port=0, job_workers=2, **overrides)
    return BlindspotsServer(config).start()


@pytest.fixture
def server(tmp_path):
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    c = Client(f"127.0.0.1:{server.port}", retries=2, timeout=120)
    yield c
    c.close()


@dataclass
class ScenarioWithModel:
    scenario: Scenario
    test_probs: np.ndarray
    pool_probs: np.ndarray


@pytest.fixture(scope="session")
def small_scenario() -> ScenarioWithModel:
    s = make_scenario(n_train=3000, n_test=3000, n_pool=6000, seed=1)
    model = train_model(s.train, seed=1, epochs=25)
    return ScenarioWithModel(s, model.predict_proba(s.test.embeddings), model.predict_proba(s.pool.embeddings))
