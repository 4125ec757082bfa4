"""paw's trainers over the TRL trainers TRL keeps in ``trl.experimental`` (imported only by the objectives that use
them: ORPO and SimPO), with paw's changes (``paw.train.trainer.PawTrainerMixin``)."""

from __future__ import annotations

import os

os.environ.setdefault(
    "TRL_EXPERIMENTAL_SILENCE", "1"
)  # paw logs the notice once (objectives.orpo.experimental)

from trl.experimental.cpo import CPOTrainer  # noqa: E402
from trl.experimental.orpo import ORPOTrainer  # noqa: E402

from paw.train.trainer import PawTrainerMixin  # noqa: E402


class PawORPOTrainer(PawTrainerMixin, ORPOTrainer):
    """ORPO on prompt/chosen/rejected text rows."""


class PawCPOTrainer(PawTrainerMixin, CPOTrainer):
    """CPO's trainer, run with SimPO's loss (``paw.train.objectives.simpo``)."""
