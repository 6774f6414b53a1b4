"""The samples in the docs are read by the real loader, so they cannot drift from the code."""

from pathlib import Path

import pytest

from turnstile.cluster.config import load_config, option_names

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_operations_sample_config_loads_and_names_every_option(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    sample = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "node.toml"
    path.write_text(sample)
    config = load_config(path, env={}, flags={})
    assert config.node_id == "n1"
    assert config.timing.heartbeat_ms == 50
    documented = {name for name in option_names() if name.split(".")[-1] in sample}
    assert documented == set(option_names())
