"""openpi's own client (``openpi-client`` 0.1.2 from PyPI) drives a vlaworks server unchanged.

openpi-client pins ``numpy<2`` and this project runs numpy 2, so the client gets its own
venv (``.venv-openpi`` at the repository root, git-ignored, created once with pip) and runs
as a child process with numpy 1.x: the test also shows arrays cross numpy versions. Without
a reachable package registry the test is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from served import observation

VENV = Path(__file__).resolve().parents[2] / ".venv-openpi"
REQUIREMENT = "openpi-client==0.1.2"
#: openpi-client 0.1.2 imports typing_extensions without declaring it
REQUIREMENTS = [REQUIREMENT, "typing-extensions"]

CLIENT = """
import json, sys
import numpy as np
from openpi_client import action_chunk_broker, websocket_client_policy

uri, obs_file, out_file = sys.argv[1:]
data = np.load(obs_file)
obs = {"images": {"base": data["base"], "wrist": data["wrist"]},
       "instruction": str(data["instruction"]), "state": data["state"]}
policy = websocket_client_policy.WebsocketClientPolicy(uri)
meta = policy.get_server_metadata()
first = policy.infer(obs)
broker = action_chunk_broker.ActionChunkBroker(policy, action_horizon=meta["chunk_size"])
steps = [broker.infer(obs)["actions"] for _ in range(meta["chunk_size"])]
try:
    policy.infer({"images": {}, "instruction": "no cameras"})
    error = None
except RuntimeError as err:
    error = str(err)
after = policy.infer(obs)["actions"]
np.savez(out_file, actions=first["actions"], steps=np.stack(steps), after=after)
print(json.dumps({"numpy": np.__version__, "chunk_size": meta["chunk_size"], "error": error,
                  "timing": sorted(first["server_timing"])}))
"""


def _ready(python: Path) -> bool:
    check = [str(python), "-c", "import openpi_client.action_chunk_broker, numpy"]
    return python.exists() and subprocess.run(check, capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def openpi_python() -> Path:
    """The venv's python with openpi-client installed (created on first use)."""
    python = VENV / "bin" / "python"
    if _ready(python):
        return python
    building = VENV.with_name(f"{VENV.name}.tmp{os.getpid()}")  # renamed into place when complete
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(building)], check=True)
    install = subprocess.run(
        [str(building / "bin" / "python"), "-m", "pip", "install", "-q", *REQUIREMENTS],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if install.returncode != 0:
        subprocess.run(["rm", "-rf", str(building)], check=False)
        tail = (install.stderr or install.stdout).strip().splitlines()[-1:]
        pytest.skip(f"cannot pip install {REQUIREMENT} (no package registry?): {tail}")
    if not python.exists():
        building.rename(VENV)
    else:  # another test run finished first
        subprocess.run(["rm", "-rf", str(building)], check=False)
    assert _ready(python), f"{VENV} has no working {REQUIREMENT}"
    return python


def test_openpi_client_drives_a_vlaworks_server(openpi_python, server, checkpoint, tmp_path) -> None:
    from vlaworks.models.checkpoint import load_policy

    obs = observation(7)
    np.savez(tmp_path / "obs.npz", **obs["images"], instruction=obs["instruction"], state=obs["state"])
    script = tmp_path / "openpi_client_run.py"
    script.write_text(CLIENT)
    run = subprocess.run(
        [str(openpi_python), str(script), server.uri, str(tmp_path / "obs.npz"), str(tmp_path / "out.npz")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    out = np.load(tmp_path / "out.npz")

    assert report["numpy"].startswith("1."), "the client should run openpi's pinned numpy 1.x"
    assert report["chunk_size"] == 4
    assert {"infer_ms", "queue_ms", "total_ms"} <= set(report["timing"])
    expected = load_policy(checkpoint).predict_chunk([obs])[0]
    np.testing.assert_array_equal(out["actions"], expected)
    np.testing.assert_array_equal(out["steps"], expected)  # ActionChunkBroker: one action per step
    assert "Error in inference server" in report["error"] and "lacks camera 'base'" in report["error"]
    np.testing.assert_array_equal(out["after"], expected)  # the connection survived the error
