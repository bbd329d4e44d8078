"""bertlab: seven bert4keras results re-implemented as one Hydra + PyTorch Lightning codebase."""

import os as _os

# Nothing may reach a model hub or W&B's servers unless the user asks for it explicitly:
# offline by DEFAULT only; HF_HUB_OFFLINE=0 set by the user goes online (transformers follows it).
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", _os.environ["HF_HUB_OFFLINE"])
_os.environ.setdefault("WANDB_MODE", "offline")

from bertlab.utils.noise import silence_startup_noise as _silence_startup_noise

# two messages Lightning prints at every run that concern no bertlab run (see utils/noise.py)
_silence_startup_noise()

__version__ = "0.1.0"
