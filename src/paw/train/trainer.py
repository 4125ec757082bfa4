"""TRL's trainers (SFT, DPO, KTO, GRPO; ORPO and SimPO in ``paw.train.experimental_trainers``; for classification
transformers' Trainer) with paw's changes, and nothing else:

1. the LR scheduler comes from ``paw.train.schedule`` (multi-stage schedules included);
2. checkpoints are staged and published atomically (``paw.train.checkpoint``) with ``checkpoint_info.json``;
3. a non-finite loss stops the run with a clear error (the last good checkpoint stays);
4. the vocabulary projection runs only at label positions: SFT's loss (``paw.train.label_loss``) and DPO, KTO and
   GRPO's per-token log-probabilities (``paw.train.label_head``), the same as TRL's, without TRL's chunked log-prob
   kernel, which on real vocabularies costs more than the whole backbone;
5. (DPO, KTO, GRPO) the reference is the base with the adapter off, or the adapter as it started, never saved.

Loss normalisation across gradient accumulation is the Trainer's: with a model that accepts
``num_items_in_batch`` every micro-batch's summed token loss is divided by the number of target tokens in the
whole accumulated batch, so batch 2 × accumulation 4 gives the same loss and gradients as batch 8.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer
from trl import DPOTrainer, GRPOTrainer, KTOTrainer, SFTTrainer

from paw.errors import PawRuntimeError
from paw.train import checkpoint as ckpt


class NonFiniteLossError(PawRuntimeError):
    """The training loss became NaN or infinite."""


class PawTrainerMixin:
    """The three changes; mixed in before a Trainer class."""

    def __init__(
        self,
        *args: Any,
        scheduler_factory: Callable[[torch.optim.Optimizer], Any],
        policy: ckpt.CheckpointPolicy,
        checkpoint_info: Callable[[int], dict[str, Any]],
        **kwargs: Any,
    ):
        self._scheduler_factory = scheduler_factory
        self._policy = policy
        self._checkpoint_info = checkpoint_info
        self._staging = False
        self.checkpoints_written: list[int] = []
        super().__init__(*args, **kwargs)

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """No README.md model card in the checkpoints dir: the experiment's report.md describes the run."""

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self.lr_scheduler is None:
            self.lr_scheduler = self._scheduler_factory(
                optimizer if optimizer is not None else self.optimizer
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def _get_output_dir(self, trial):
        root = super()._get_output_dir(trial)
        return str(ckpt.staging_dir(root)) if self._staging else root

    def _save_checkpoint(self, model, trial) -> None:
        root = Path(self.args.output_dir)
        step = self.state.global_step
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = False
        # every rank writes its own rng_state_<rank>.pth into the staged dir: publish only once all have
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            ckpt.publish(root, step, self._checkpoint_info(step))
            ckpt.prune(root, self._policy.keep_last)
        self.checkpoints_written.append(step)
        self.accelerator.wait_for_everyone()

    def _track_num_input_tokens(self, inputs):
        """Packed batches carry a 4D mask (or no mask, padding-free): count their real tokens."""
        from paw.data.packing import real_tokens

        if not isinstance(inputs, dict):  # GRPO's batches are prompts (it counts the tokens it generates)
            return super()._track_num_input_tokens(inputs)
        if "input_ids" not in inputs and self.args.include_num_input_tokens_seen != "no":
            # ORPO/CPO batches: chosen_* and rejected_* sequences, each with its own attention mask
            masks = [v for k, v in inputs.items() if k.endswith("attention_mask") and torch.is_tensor(v)]
            tokens = sum(int(m.sum()) for m in masks)
            tokens = torch.as_tensor(tokens, device=self.args.device, dtype=torch.int64)
            self.state.num_input_tokens_seen += self.accelerator.gather(tokens).sum().item()
            return None
        mask = inputs.get("attention_mask")
        if self.args.include_num_input_tokens_seen != "no" and (mask is None or mask.dim() == 4):
            if "position_ids" in inputs:
                tokens = torch.as_tensor(real_tokens(inputs), device=self.args.device, dtype=torch.int64)
                self.state.num_input_tokens_seen += self.accelerator.gather(tokens).sum().item()
                return
        super()._track_num_input_tokens(inputs)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():
            last = ckpt.latest_checkpoint(self.args.output_dir)
            kept = f"the last good checkpoint is {last}" if last else "no checkpoint had been written"
            raise NonFiniteLossError(
                f"training stopped: the loss became {loss.item()} at step {self.state.global_step + 1}; {kept}. "
                "Lower training.learning_rate, add warmup, or use fp32/bf16 instead of fp16"
            )
        return loss


class PawSFTTrainer(PawTrainerMixin, SFTTrainer):
    """Causal-LM SFT on pre-tokenised ``input_ids``/``labels``."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        from paw.train.label_loss import label_positions_loss

        peft_config = getattr(self.accelerator.unwrap_model(model), "active_peft_config", None)
        if return_outputs or getattr(peft_config, "is_prompt_learning", False) or self.aux_loss_enabled:
            # virtual tokens shift the positions; callers that want the logits get TRL's path
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        try:
            result = label_positions_loss(model, inputs, num_items_in_batch)
        except TypeError as err:  # a model (custom code) whose forward takes no logits_to_keep
            if "logits_to_keep" not in str(err):
                raise
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = result.loss
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # DDP averages gradients; the count was global
        self._log_token_metrics(inputs, result)
        return loss

    def _log_token_metrics(self, inputs, result) -> None:
        """TRL's per-step entropy, token accuracy and token count, from the label positions' logits."""
        mode = "train" if self.model.training else "eval"
        gather = self.accelerator.gather_for_metrics
        device = inputs["labels"].device
        n = gather(torch.tensor(result.label_tokens, device=device)).sum()
        entropy = gather(torch.tensor(result.entropy_sum, device=device)).sum()
        correct = gather(torch.tensor(result.correct, device=device)).sum()
        self._metrics[mode]["entropy"].append((entropy / n).item() if n > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((correct / n).item() if n > 0 else 0.0)
        if mode == "train":
            mask = inputs.get("attention_mask")
            local = (
                mask.sum()
                if mask is not None and mask.dim() == 2
                else torch.tensor(inputs["input_ids"].numel())
            )
            self._total_train_tokens += gather(local.to(device)).sum().item()
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]


class PawClassificationTrainer(PawTrainerMixin, Trainer):
    """Sequence classification (``input_ids``, ``attention_mask``, ``labels``), padded per batch."""


REFERENCE_ADAPTER = "ref"  # the frozen copy TRL adds beside a PeftModel's adapter to score the reference


class ReferenceMixin:
    """How TRL's preference and RL trainers get their reference on a PeftModel: with ``reference_is_base`` (a
    fresh adapter, whose start is the base model) the copy TRL adds is dropped, so the reference forward runs the
    base with the adapter switched off; otherwise (``peft.init_adapter``) the copy stays, frozen, and is left out
    of every saved adapter directory."""

    def __init__(self, *args: Any, reference_is_base: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        if reference_is_base and REFERENCE_ADAPTER in getattr(model, "peft_config", {}):
            model.delete_adapter(REFERENCE_ADAPTER)
            model.set_adapter("default")

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        import shutil

        super()._save(output_dir, state_dict)
        shutil.rmtree(Path(output_dir or self.args.output_dir) / REFERENCE_ADAPTER, ignore_errors=True)


class LabelHeadMixin:
    """TRL's tiled log-prob head replaced by paw's label-position head (``paw.train.label_head``), except under
    prompt-learning adapters."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from paw.train.label_head import add_label_head

        model = self.accelerator.unwrap_model(self.model)
        if not getattr(getattr(model, "active_peft_config", None), "is_prompt_learning", False):
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            add_label_head(base, getattr(self, "temperature", 1.0))  # GRPO scores at its sampling temperature


class PawDPOTrainer(PawTrainerMixin, ReferenceMixin, LabelHeadMixin, DPOTrainer):
    """DPO on pairs paw has tokenised (``prompt_ids``, ``chosen_ids``, ``rejected_ids``)."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset  # tokenised by paw.data.preference, the SFT way


class PawKTOTrainer(PawTrainerMixin, ReferenceMixin, LabelHeadMixin, KTOTrainer):
    """KTO on prompt/completion/label rows."""


class PawGRPOTrainer(PawTrainerMixin, ReferenceMixin, LabelHeadMixin, GRPOTrainer):
    """GRPO on prompts, with paw's rewards (``paw.train.rewards``)."""
