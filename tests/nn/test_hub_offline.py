"""Loading an encoder by hub name: offline (the default) a name missing from the HF cache is
one line naming the model and how to provide it; HF_HUB_OFFLINE=0 set by the user is not
overridden by anything in bertlab and makes the lookup go to the hub."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bertlab.nn import encoders
from bertlab.utils.errors import CheckpointError


def test_offline_hub_name_is_one_line_naming_the_model_and_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(CheckpointError) as err:
        encoders.checkpoint_model_type("bert-base-chinese", offline=True)
    msg = str(err.value)
    assert "\n" not in msg
    assert "'bert-base-chinese'" in msg and "HF_HUB_OFFLINE=0" in msg and "local directory" in msg
    assert "Hugging Face cache" in msg


def test_importing_bertlab_keeps_a_users_online_setting():
    code = "import os, bertlab; print(os.environ['HF_HUB_OFFLINE'], os.environ['TRANSFORMERS_OFFLINE'])"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    online = subprocess.run(
        [sys.executable, "-c", code], env=env | {"HF_HUB_OFFLINE": "0"}, capture_output=True, text=True
    )
    assert online.stdout.split() == ["0", "0"], online.stderr
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert default.stdout.split() == ["1", "1"], default.stderr


def test_online_lookup_asks_the_hub(monkeypatch):
    """HF_HUB_OFFLINE=0: build_encoder's lookup passes local_files_only=False (no network here:
    the config call is intercepted)."""
    import transformers

    seen = {}

    def fake(path, local_files_only):
        seen["local_files_only"] = local_files_only
        return transformers.BertConfig()

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", staticmethod(fake))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert encoders.checkpoint_model_type("bert-base-chinese", offline=False) == "bert"
    assert seen == {"local_files_only": False}
