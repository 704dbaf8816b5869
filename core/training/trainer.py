"""Build and run the TRL SFTTrainer for a run folder (transformers + peft + trl + bitsandbytes).

Everything heavy is imported inside functions. Reporting and stopping go only through `EventsCallback`, a
TrainerCallback that appends events to events.jsonl and stdout and watches the run's control file.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import Cancelled, UserError
from core.runs import RunFolder
from core.training.config import Hardware, Resolved, TrainingConfig, config_from_dict, resolve_for_hardware

EmitFn = Callable[[dict[str, Any]], None]


def _dtype(name: str) -> Any:
    from core.loader import torch_dtype

    return torch_dtype(name)


def environment(hw: Hardware) -> dict[str, Any]:
    import platform

    from core.versions import package_versions

    versions = package_versions()
    import core

    return {
        "whetstone": getattr(core, "__version__", ""),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "gpu": {"name": hw.name, "total_gib": round(hw.total_gib, 2), "bf16": hw.bf16} if hw.cuda else None,
        "cpu_count": os.cpu_count(),
    }


@dataclass
class RunState:
    """What the callback tracks for red flags and the summary."""

    first_loss: float | None = None
    last_loss: float | None = None
    last_eval: float | None = None
    best_eval: float | None = None
    best_step: int | None = None
    eval_history: list[tuple[int, float, float | None]] = field(default_factory=list)
    train_ema: float | None = None
    drift_history: list[str | None] = field(default_factory=list)  # length drift at each sampled evaluation
    last_sample_stats: dict[str, Any] | None = None
    flags: list[str] = field(default_factory=list)
    stopped: bool = False
    nan: bool = False


class StopDuringEvaluation(Exception):
    """Raised from the callback to end a validation pass when Stop is pressed; the worker then saves the
    checkpoint of the finished step (`save_stopped_checkpoint`)."""

    def __init__(self, step: int) -> None:
        super().__init__(f"stop requested during validation at step {step}")
        self.step = step


def stop_requested(run: RunFolder) -> bool:
    """Whether the run's control file asks to stop (an unreadable control file counts as a stop)."""
    if not run.control_file.exists():
        return False
    import json

    try:
        return json.loads(run.control_file.read_text(encoding="utf-8")).get("action") == "stop"
    except (OSError, ValueError, AttributeError):
        return True


def stop_agreed(run: RunFolder) -> bool:
    """stop_requested, decided for all ranks of a multi-GPU run at once: a rank that stopped alone would leave
    the others waiting for it forever, so any rank that saw the request stops them all at the same point."""
    return across_ranks([1.0 if stop_requested(run) else 0.0], "max")[0] > 0


def save_stopped_checkpoint(trainer: Any) -> None:
    """After StopDuringEvaluation: save the checkpoint of the last finished step, as the Trainer would have."""
    trainer.model.train()
    trainer._save_checkpoint(trainer.model, None)  # noqa: SLF001 - the Trainer's own checkpoint layout
    trainer.control = trainer.callback_handler.on_save(trainer.args, trainer.state, trainer.control)


def make_callback(
    run: RunFolder, emit: EmitFn, cfg: TrainingConfig, token_counter: list[int], sampler: Any = None
) -> Any:
    """The EventsCallback. `sampler` (a samples.ValidationSampler, or anything with `active` and
    `sample(model, autocast_dtype)`) answers the fixed validation prompts after each evaluation."""
    from transformers import TrainerCallback

    class EventsCallback(TrainerCallback):
        def __init__(self) -> None:
            self.state = RunState()
            self._t_last = time.perf_counter()
            self._tokens_last = 0
            self._step_times: list[float] = []
            self._t_step = time.perf_counter()
            self._start_step = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._start_step = state.global_step
            self._t_last = self._t_step = time.perf_counter()
            self._tokens_last = token_counter[0]
            # Speed over the last 8 logged steps: the data loader collates one batch ahead, so a single
            # step's token count is shifted by a batch and reads 0 at the end of each epoch.
            self._speed_window: deque[tuple[float, int]] = deque([(self._t_last, token_counter[0])], maxlen=9)
            split = split_share(kw.get("model"))
            if split is not None:
                held, whole, ranks = split
                emit(
                    {
                        "type": "log",
                        "step": state.global_step,
                        "sharded": True,
                        "message": f"The model is split across {ranks} GPUs (FSDP2): each holds "
                        f"{held:.2f} GiB of its {whole:.2f} GiB of weights.",
                    }
                )

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            now = time.perf_counter()
            self._step_times.append(now - self._t_step)
            self._step_times = self._step_times[-20:]
            self._t_step = now
            if stop_agreed(run):
                self._stop(state, control)
            elif state.max_steps and state.global_step >= state.max_steps and args.eval_strategy != "no":
                control.should_evaluate = True  # the last step is always validated (the run's final figure)

        def _stop(self, state: Any, control: Any) -> None:
            """Save a checkpoint at this step boundary and end; a validation (and its sample answers) that was
            due now is skipped: Stop must take seconds, not minutes."""
            control.should_save = True
            control.should_training_stop = True
            control.should_evaluate = False
            if self.state.stopped:
                return
            self.state.stopped = True
            emit(
                {
                    "type": "log",
                    "step": state.global_step,
                    "epoch": state.epoch,
                    "message": f"Stop requested: saving a checkpoint at step {state.global_step}",
                }
            )

        def on_prediction_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            # A Stop during a validation pass ends it after the current batch (the worker saves the checkpoint
            # of the step just finished): a big validation split must not hold a Stop for minutes.
            if stop_agreed(run):
                self._stop(state, control)
                raise StopDuringEvaluation(state.global_step)

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
        ) -> None:
            logs = logs or {}
            step = state.global_step
            if "loss" in logs:
                loss = float(logs["loss"])
                now = time.perf_counter()
                self._t_last, self._tokens_last = now, token_counter[0]
                window = getattr(self, "_speed_window", None)
                if window is None:
                    window = self._speed_window = deque([(now, token_counter[0])], maxlen=9)
                else:
                    window.append((now, token_counter[0]))
                elapsed = max(1e-9, window[-1][0] - window[0][0])
                vram = None
                try:
                    import torch

                    if torch.cuda.is_available():
                        vram = round(torch.cuda.max_memory_allocated() / 2**30, 3)
                except Exception:  # noqa: BLE001
                    pass
                # Tokens of every rank (each counts its own batches); peak memory of each GPU.
                per_rank = gather_ranks([float(window[-1][1] - window[0][1]), -1.0 if vram is None else vram])
                tokens = sum(r[0] for r in per_rank)
                vrams = [r[1] for r in per_rank if r[1] >= 0]
                vram = max(vrams) if vrams else None
                avg = sum(self._step_times) / max(1, len(self._step_times))
                eta = max(0, state.max_steps - step) * avg if state.max_steps else None
                event = {
                    "type": "step",
                    "step": step,
                    "epoch": round(float(state.epoch or 0), 4),
                    "loss": loss,
                    "lr": logs.get("learning_rate"),
                    "grad_norm": _num(logs.get("grad_norm")),
                    "tokens_per_s": round(tokens / elapsed, 1),
                    "vram_gib": vram,
                    "eta_s": None if eta is None else round(eta, 1),
                    "max_steps": state.max_steps,
                }
                if len(per_rank) > 1:
                    event["gpus"] = len(per_rank)
                    event["tokens_per_s_per_gpu"] = round(tokens / elapsed / len(per_rank), 1)
                    event["vram_gib_per_gpu"] = vrams or None
                emit(event)
                self._red_flags_train(loss, step, args, control, emit)
            if "eval_loss" in logs:
                self._on_eval(float(logs["eval_loss"]), step, state, emit)

        def _red_flags_train(self, loss: float, step: int, args: Any, control: Any, emit: EmitFn) -> None:
            s = self.state
            if math.isnan(loss) or math.isinf(loss):
                s.nan = True
                if "nan" not in s.flags:
                    s.flags.append("nan")
                control.should_training_stop = True
                emit(
                    {
                        "type": "log",
                        "step": step,
                        "flag": "nan",
                        "message": f"The loss became NaN at step {step}: lower the learning rate "
                        f"(now {args.learning_rate:g}) and check the data.",
                    }
                )
                return
            if s.first_loss is None:
                s.first_loss = loss
            s.last_loss = loss
            s.train_ema = loss if s.train_ema is None else 0.8 * s.train_ema + 0.2 * loss
            if s.first_loss and loss > 3 * s.first_loss and loss > 5 and "exploding" not in s.flags:
                s.flags.append("exploding")
                emit(
                    {
                        "type": "log",
                        "step": step,
                        "flag": "exploding",
                        "message": f"The loss is exploding ({loss:.2f} vs {s.first_loss:.2f} at the start): "
                        f"lower the learning rate (now {args.learning_rate:g}).",
                    }
                )

        def _on_eval(self, eval_loss: float, step: int, state: Any, emit: EmitFn) -> None:
            s = self.state
            s.last_eval = eval_loss
            best = s.best_eval is None or eval_loss < s.best_eval
            if best:
                s.best_eval, s.best_step = eval_loss, step
            s.eval_history.append((step, eval_loss, s.train_ema))
            emit(
                {
                    "type": "eval",
                    "step": step,
                    "epoch": round(float(state.epoch or 0), 4),
                    "eval_loss": eval_loss,
                    "best": best,
                }
            )
            h = s.eval_history
            if len(h) >= 3 and "overfitting" not in s.flags:
                (_, e1, t1), (_, e2, t2), (_, e3, t3) = h[-3:]
                if e3 > e2 > e1 and t1 is not None and t3 is not None and t3 < t1:
                    s.flags.append("overfitting")
                    emit(
                        {
                            "type": "log",
                            "step": step,
                            "flag": "overfitting",
                            "message": f"Validation loss is rising while training loss falls (overfitting); the best "
                            f"checkpoint is step {s.best_step} (validation loss {s.best_eval:.4f}).",
                        }
                    )

        def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            sample = (
                sampler is not None
                and sampler.active
                and model is not None
                and getattr(state, "is_world_process_zero", True)
            )
            if sample and not stop_requested(run):  # rank 0 answers; the others wait for it at the next step
                self._sample(args, state, model, emit)
            if stop_agreed(run):  # asked while validating or sampling: save this step now and end
                self._stop(state, control)

        def _sample(self, args: Any, state: Any, model: Any, emit: EmitFn) -> None:
            from core.training.samples import samples_message

            step = state.global_step
            dtype = None
            if getattr(args, "bf16", False) or getattr(args, "fp16", False):
                dtype = _dtype("bfloat16" if args.bf16 else "float16")
            try:
                samples, stats, check = sampler.sample(model, dtype, should_stop=lambda: stop_requested(run))
            except Cancelled:
                return  # Stop was pressed while answering: the cut answers are not shown
            except Exception as exc:  # noqa: BLE001 - samples are a view on training; never end the run
                import sys
                import traceback

                sampler.active = False
                traceback.print_exc(file=sys.stderr)  # the parent keeps stderr in logs/worker.log
                try:
                    import torch

                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                except Exception:  # noqa: BLE001
                    pass
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                emit(
                    {
                        "type": "log",
                        "step": step,
                        "message": f"Sample answers failed at step {step} ({type(exc).__name__}: {first}); "
                        "training goes on without them.",
                    }
                )
                return
            self.state.last_sample_stats = {"step": step, **stats}
            emit(
                {
                    "type": "log",
                    "step": step,
                    "epoch": round(float(state.epoch or 0), 4),
                    "message": samples_message(step, stats),
                    "samples": samples,
                    "sample_stats": stats,
                }
            )
            self._red_flag_length(check.drift, check.message, step, emit)

        def _red_flag_length(self, drift: str | None, message: str, step: int, emit: EmitFn) -> None:
            """Raised once, when two sampled evaluations in a row drift (one early evaluation of a model that
            has barely trained is no trend)."""
            from core.training.samples import DRIFT_FLAG

            s = self.state
            s.drift_history.append(drift)
            if DRIFT_FLAG in s.flags or drift is None:
                return
            if len(s.drift_history) >= 2 and s.drift_history[-2] is not None:
                s.flags.append(DRIFT_FLAG)
                emit({"type": "log", "step": step, "flag": DRIFT_FLAG, "message": message})

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            step = state.global_step
            path = Path(args.output_dir) / f"checkpoint-{step}"
            emit(
                {
                    "type": "checkpoint",
                    "step": step,
                    "epoch": round(float(state.epoch or 0), 4),
                    "message": str(path),
                    "best": self.state.best_step == step,
                }
            )

    return EventsCallback()


def _distributed() -> Any:
    """torch.distributed when this worker is one rank of a multi-GPU run, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return None
    return dist


def _collective_device(dist: Any) -> Any:
    import torch

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def across_ranks(values: list[float], op: str = "sum") -> list[float]:
    """`values` reduced over the ranks of a multi-GPU run (sum or max); unchanged for one process. Used for the
    Stop decision and the speed figures only (gradients are DDP's business)."""
    dist = _distributed()
    if dist is None:
        return values
    import torch

    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device(dist))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return [float(v) for v in tensor.tolist()]


def gather_ranks(values: list[float]) -> list[list[float]]:
    """Each rank's `values`, in rank order ([values] for one process)."""
    dist = _distributed()
    if dist is None:
        return [values]
    import torch

    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device(dist))
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor)
    return [[float(v) for v in part.tolist()] for part in parts]


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f


def attention_for(model_dir: Path, resolved: Resolved) -> tuple[str, str | None]:
    """(attn_implementation to ask core.loader for, the run-log line saying whether attention runs per
    document inside packed rows or why it falls back to the reference kernel)."""
    from core.loader import attention_implementation
    from core.training import packed_attention

    if resolved.attention != packed_attention.IMPLEMENTATION:
        return resolved.attention, None
    reason = packed_attention.device_unsupported_reason()
    if reason is None:
        reason = packed_attention.unsupported_reason(model_dir)
        if reason is None and attention_implementation(model_dir, "cuda", "auto") != "sdpa":
            reason = "this model needs its eager attention"
    if reason is not None:
        return (
            "auto",
            f"Attention falls back to the reference kernel over each whole packed row ({reason}); "
            "same results, slower.",
        )
    return (
        packed_attention.register(),
        "Attention runs per document inside each packed row (flash varlen kernel).",
    )


def load_model(
    model_dir: Path, resolved: Resolved, hw: Hardware | None = None, emit: EmitFn | None = None
) -> Any:
    """The base model for training, through core.loader (attention kernel chosen per model; on a GPU with
    packing, per document inside packed rows where the model allows it)."""
    from core.loader import load_base_model, quantization_config

    cfg = resolved.config
    compute = _dtype(resolved.compute_dtype)
    cuda = hw.cuda if hw is not None else None
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    attention, note = attention_for(model_dir, resolved) if cuda else (cfg.model.attn_implementation, None)
    if note and emit is not None:
        emit({"type": "log", "step": 0, "message": note})
    quantization = None
    if cfg.quant.mode != "none":
        quantization = quantization_config(
            cfg.quant.mode, compute, cfg.quant.quant_type, cfg.quant.double_quant
        )
    return load_base_model(
        model_dir,
        device="cuda" if cuda else "cpu",
        dtype=_dtype(resolved.weights_dtype),
        attn_implementation=attention,
        quantization=quantization,
        trust_remote_code=registry_trust(cfg.model.name),
        keep_on_cpu=sharded(cfg),  # FSDP moves each rank's shard to its GPU: no GPU holds the whole model
    )


def sharded(cfg: TrainingConfig) -> bool:
    """Whether this process is one rank of a run that splits the model across GPUs (FSDP, see launch.py)."""
    return cfg.train.shard_model and int(os.environ.get("WORLD_SIZE", "1")) > 1


def split_share(model: Any) -> tuple[float, float, int] | None:
    """(GiB of weights this rank holds, GiB of the whole model, ranks) for a model FSDP split across ranks;
    None for a model each process holds whole."""
    if model is None:
        return None
    from torch.distributed.tensor import DTensor

    held = whole = 0.0
    ranks = 0
    for param in model.parameters():
        size = param.element_size() / 2**30
        if isinstance(param, DTensor):
            ranks = max(ranks, param.device_mesh.size())
            held += param.to_local().numel() * size
            whole += param.numel() * size
        else:
            held += param.numel() * size
            whole += param.numel() * size
    return (held, whole, ranks) if ranks > 1 else None


def gather_adapter(model: Any) -> dict[str, Any]:
    """The trainable (LoRA) weights, whole, from a model FSDP split across the ranks: every rank must call it
    (each weight is gathered from all of them, in the same order); returns {name: tensor on the CPU}. Only the
    adapter is gathered, never the base weights."""
    from torch.distributed.tensor import DTensor

    out: dict[str, Any] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        full = param.full_tensor() if isinstance(param, DTensor) else param
        out[name] = full.detach().to("cpu", copy=True)
    return out


def uses_memory_plan(model: Any, resolved: Resolved, hw: Hardware) -> bool:
    """Whether this run recomputes layers with our memory plan (core/training/memory_plan.py) instead of
    transformers' gradient checkpointing: one CUDA GPU, checkpointing on, a model with decoder layers.
    WHETSTONE_MEMORY_PLAN=off keeps transformers' checkpointing (for measurements)."""
    from core.training.estimate import own_checkpointing
    from core.training.memory_plan import decoder_layers

    if os.environ.get("WHETSTONE_MEMORY_PLAN", "").strip().lower() == "off":
        return False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return False
    return own_checkpointing(resolved, hw) and bool(decoder_layers(model))


def apply_memory_plan(
    trainer: Any,
    resolved: Resolved,
    hw: Hardware,
    target_gib: float | None = None,
    emit: EmitFn | None = None,
) -> str:
    """Choose the memory plan for this run's micro-batch on this card (the estimate's `choose_plan`); a
    callback installs it on the model when training starts (after the Trainer's Liger patches; again on a
    resume) and `emit`s the plan in words to the run log. Returns the plan in words."""
    from core.training.estimate import ModelShape, choose_plan, trl_chunks_logits
    from core.training.memory_plan import callback, decoder_layers

    model = trainer.model

    t = resolved.config.train
    config = model.config.to_dict() if hasattr(model.config, "to_dict") else dict(model.config)
    shape = ModelShape.from_config_json(config)
    plan = choose_plan(
        resolved.config,
        shape,
        resolved.compute_dtype,
        t.micro_batch_size * t.max_length,
        trl_chunks_logits(),
        resolved.liger,
        target_gib or hw.total_gib,
    )
    forced = os.environ.get("WHETSTONE_MEMORY_PLAN", "").strip()
    if forced:  # for measurements: "kept=N,offload,tile=N"
        from core.training.memory_plan import MemoryPlan

        parts = dict((p.split("=") + ["1"])[:2] for p in forced.split(",") if p)
        plan = MemoryPlan(
            kept=int(parts.get("kept", 0)), offload="offload" in parts, mlp_tile=int(parts.get("tile", 0))
        )
    layers = len(decoder_layers(model))
    said: list[bool] = []

    def installed(count: int) -> None:
        if emit is not None and not said:
            said.append(True)
            emit({"type": "log", "step": 0, "message": plan.describe(count)})

    trainer.add_callback(callback(plan, installed))
    return plan.describe(layers)


def score_trained_positions_only() -> bool:
    """Make TRL's fused LM head score only the positions whose label is trained, on a CPU too.

    TRL's SFTTrainer runs the LM head through `add_fused_lm_head`: the backbone, then the vocabulary projection
    and log-softmax in tiles, without the full (batch x length x vocabulary) logits. On a GPU with Triton it
    projects only the positions whose next-token label is not -100; elsewhere it projects every position and
    zeroes the masked ones afterwards (a fixed tile shape for compiler backends such as Neuron, which a CPU in
    eager mode does not need). For prompt-completion rows most positions are prompt, and SmolLM2's 49,152-entry
    vocabulary makes the projection a large share of each step, so on a CPU the compact path is used too: the
    same TRL code, the same loss and gradients (tests/core/test_training_loss.py). GPUs are left as TRL decides.
    Returns whether the compact path is on for CPUs (False when this TRL lacks the switch: then every position
    is scored, slower, with the same result)."""
    try:
        from trl.trainer import utils
    except ImportError:
        return False
    decide = getattr(utils, "_use_triton", None)
    if decide is None or not callable(decide):
        return False
    if getattr(decide, "whetstone_compact_cpu", False):
        return True

    def compact(device: Any) -> bool:
        return getattr(device, "type", None) == "cpu" or bool(decide(device))

    compact.whetstone_compact_cpu = True  # type: ignore[attr-defined]
    utils._use_triton = compact  # noqa: SLF001 - TRL's own switch between its two paths
    return True


def registry_trust(model_name: str) -> bool:
    from core.loader import registry_allows_code

    return registry_allows_code(model_name)


def lora_config(rc: TrainingConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=rc.lora.r,
        lora_alpha=rc.lora.alpha,
        lora_dropout=rc.lora.dropout,
        target_modules=rc.lora.peft_target_modules(),
        bias="none",
        task_type="CAUSAL_LM",
    )


def sft_config(resolved: Resolved, hw: Hardware, output_dir: str, has_eval: bool, **extra: Any) -> Any:
    """TRL SFTConfig from our typed config (the only place where it is converted)."""
    import dataclasses

    from trl import SFTConfig

    rc = resolved.config
    t = rc.train
    bf16 = resolved.compute_dtype == "bfloat16" and hw.cuda
    fp16 = resolved.compute_dtype == "float16" and hw.cuda
    eval_steps: float = t.eval_steps if t.eval_steps < 1 else int(t.eval_steps)
    save_steps: float = t.save_steps if t.save_steps < 1 else int(t.save_steps)
    args_kwargs: dict[str, Any] = dict(
        output_dir=output_dir,
        num_train_epochs=t.epochs if t.epochs > 0 else 1.0,
        max_steps=t.max_steps if t.max_steps > 0 else -1,
        per_device_train_batch_size=t.micro_batch_size,
        per_device_eval_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a ratio (transformers 5)
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        data_seed=t.seed,
        bf16=bf16,
        fp16=fp16,
        gradient_checkpointing=resolved.gradient_checkpointing,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        save_strategy="steps",
        save_steps=save_steps,
        save_only_model=False,
        report_to="none",
        disable_tqdm=True,
        max_length=t.max_length,
        packing=t.packing,
        padding_free=t.packing,
        dataloader_num_workers=0,
        use_cpu=not hw.cuda,
        dataset_num_proc=None,
        remove_unused_columns=True,
    )
    if t.packing:
        args_kwargs["packing_strategy"] = "bfd"
    elif not hw.cuda:
        args_kwargs["train_sampling_strategy"] = "group_by_length"  # little padding per batch
    if resolved.liger:
        args_kwargs["use_liger_kernel"] = True
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # LoRA leaves most parameters frozen; every trainable one gets a gradient at each step.
        args_kwargs["ddp_find_unused_parameters"] = False
    if sharded(rc):
        # FSDP re-gathers a layer's weights when its activations are recomputed: the non-reentrant
        # checkpoint is the one that works with it (and with frozen inputs to the first layer).
        args_kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    args_kwargs.update(extra)
    # transformers renamed gradient_checkpointing(_kwargs) to activation_checkpointing(_kwargs): the old names
    # warn that they go in v6 and lose to the new ones when both are set; kept on a transformers without them
    if "activation_checkpointing" in {f.name for f in dataclasses.fields(SFTConfig)}:
        for old in ("gradient_checkpointing", "gradient_checkpointing_kwargs"):
            if old in args_kwargs:
                args_kwargs[old.replace("gradient_", "activation_", 1)] = args_kwargs.pop(old)
    try:
        return SFTConfig(**args_kwargs)
    except TypeError:  # transformers 4.x: warmup_ratio
        args_kwargs["warmup_ratio"] = args_kwargs.pop("warmup_steps")
        return SFTConfig(**args_kwargs)


MIN_STEPS_PER_EVAL_CPU = 25  # on a CPU one validation + sample answers costs about as much as a few steps
MIN_STEPS_PER_EVAL_GPU = 10
# On a CPU the validations, with their sample answers, take at most about this share of the run. Their cost in
# training steps (measured on SmolLM2 with 4 rows a step: a validation of 20 rows took 2.2 steps, answering 2
# sample prompts of up to 41 tokens 1.2 steps): a validation row costs ~0.45 of a trained row (forward only,
# unsorted batches), and ~32 generated tokens cost one step of 4 rows.
CPU_VALIDATION_SHARE = 0.1
VALIDATION_ROW_COST = 0.45
SAMPLE_TOKENS_PER_STEP_OF_4_ROWS = 32


def planned_steps(trainer: Any, t: Any) -> int:
    """The optimizer steps the run will take (what the Trainer computes when training starts)."""
    if t.max_steps > 0:
        return int(t.max_steps)
    batches = math.ceil(len(trainer.train_dataset) / max(1, t.micro_batch_size))
    per_epoch = max(batches // t.grad_accum + int(batches % t.grad_accum > 0), 1)
    return max(1, math.ceil(per_epoch * (t.epochs if t.epochs > 0 else 1.0)))


def validation_cost_steps(val_rows: int, rows_per_step: int, sample_tokens: int) -> float:
    """What one validation with its sample answers costs on a CPU, in training steps (see the constants)."""
    rows_per_step = max(1, rows_per_step)
    return (
        val_rows * VALIDATION_ROW_COST / rows_per_step
        + sample_tokens / SAMPLE_TOKENS_PER_STEP_OF_4_ROWS * 4 / rows_per_step
    )


def size_validation(trainer: Any, t: Any, cuda: bool, sample_tokens: int = 0) -> str | None:
    """Validations sized to the run: "Validate every" as a fraction (0.25 = four checks) becomes a whole
    number of steps, with at least 25 steps (10 on a GPU) between checks, so a 7-step run validates once at
    its end instead of four times. On a CPU the checks (with `sample_tokens`, the longest sample answers)
    also take no more than about a tenth of the run: a 50-step run with 20 validation rows validates once.
    A whole number the user chose is kept. Returns the plan in words."""
    if t.eval_steps >= 1:
        return None
    steps = planned_steps(trainer, t)
    wanted = max(1, round(1 / t.eval_steps))
    gap = MIN_STEPS_PER_EVAL_GPU if cuda else MIN_STEPS_PER_EVAL_CPU
    count = max(1, min(wanted, steps // gap))
    cost = 0.0
    if not cuda:
        val_rows = len(getattr(trainer, "eval_dataset", None) or [])
        cost = validation_cost_steps(val_rows, t.micro_batch_size * t.grad_accum, sample_tokens)
        if cost > 0:
            count = max(1, min(count, math.floor(CPU_VALIDATION_SHARE * steps / cost)))
    every = math.ceil(steps / count)
    trainer.args.eval_steps = every
    if count == wanted:
        return None
    reason = "each check costs about as much as a few steps"
    if cost >= 1:
        reason = f"each check, with its sample answers, costs about {round(cost)} training steps here"
    return (
        f"Validation {'once, at the end' if count == 1 else f'{count} times'} of this {steps}-step run "
        f"(every {every} steps) instead of {wanted} times: {reason}."
    )


def build_trainer(
    run: RunFolder, emit: EmitFn, hw: Hardware | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """(trainer, callback, info). Reads config.yaml and dataset.jsonl from the run folder."""
    import torch
    from trl import SFTTrainer

    from core.loader import load_tokenizer
    from core.models import resolve_base_model
    from core.training.dataset import build_datasets

    cfg = config_from_dict(run.read_config())
    if hw is None:
        from core.loader import detect_hardware

        hw = detect_hardware()
    resolved = resolve_for_hardware(cfg, hw)
    rc = resolved.config
    t = rc.train
    for note in resolved.notes + resolved.log_notes:
        emit({"type": "log", "step": 0, "message": note})
    model_dir = resolve_base_model(rc.model.name)
    tokenizer = load_tokenizer(model_dir, trust_remote_code=registry_trust(rc.model.name), set_pad=True)
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{rc.model.name} has no chat template; pick an instruct/chat model.")
    if not run.dataset_file.exists():
        raise UserError(f"{run.path} has no dataset snapshot (dataset.jsonl).")
    rows = run.dataset_records()
    train_ds, val_ds, stats = build_datasets(tokenizer, rows, t.max_length, t.assistant_only_loss)
    if stats.get("folded"):
        from core.training.dataset import fold_note

        emit({"type": "log", "step": 0, "message": f"{fold_note(tokenizer)} ({stats['folded']} rows)"})
    emit(
        {
            "type": "log",
            "step": 0,
            "message": (
                f"{stats['train']} training and {stats['validation']} validation examples "
                f"({stats['train_tokens']} training tokens; {stats['truncated']} cut to {t.max_length} tokens, "
                f"{stats['dropped']} without any reply tokens left out)"
            ),
        }
    )
    torch.manual_seed(t.seed)
    model = load_model(model_dir, resolved, hw, emit)
    lora = lora_config(rc)
    own_ckpt = uses_memory_plan(model, resolved, hw)
    sft_args = sft_config(
        resolved,
        hw,
        str(run.checkpoints_dir),
        has_eval=val_ds is not None,
        **({"gradient_checkpointing": False} if own_ckpt else {}),  # the memory plan recomputes instead
    )
    token_counter = [0]
    sampler = None
    if val_ds is not None and t.sample_prompts > 0 and sharded(rc):
        # Generating on rank 0 alone would wait forever for the other GPUs' shares of each layer.
        emit(
            {
                "type": "log",
                "step": 0,
                "message": "Sample answers are off while the model is split across GPUs (each GPU holds only "
                "part of it); the validation loss is still measured. Evaluate the finished run to read answers.",
            }
        )
    elif val_ds is not None and t.sample_prompts > 0:
        from core.training.samples import ValidationSampler

        sampler = ValidationSampler.from_rows(
            tokenizer, rows, t.sample_prompts, t.sample_max_new_tokens, t.max_length
        )
        if sampler is not None:
            emit(
                {
                    "type": "log",
                    "step": 0,
                    "message": f"At each validation the model answers {len(sampler.prompts)} fixed validation "
                    f"prompts (up to {sampler.max_new_tokens} tokens each; Samples tab).",
                }
            )
    callback = make_callback(run, emit, rc, token_counter, sampler)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        trainer = SFTTrainer(
            model=model,
            args=sft_args,
            train_dataset=train_ds,
            eval_dataset=val_ds,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[callback],
        )
    if not hw.cuda:
        score_trained_positions_only()
    from core.training.checkpoints import install_atomic_checkpoints

    install_atomic_checkpoints(trainer)  # a checkpoint appears in checkpoints/ only once it is complete
    if own_ckpt:
        apply_memory_plan(trainer, resolved, hw, emit=emit)
    inner = trainer.data_collator

    def counting(features: list[dict[str, Any]]) -> Any:
        if getattr(
            trainer.model, "training", True
        ):  # the eval loop uses the same collator; its tokens are not training speed
            token_counter[0] += sum(len(f["input_ids"]) for f in features)
        return inner(features)

    trainer.data_collator = counting
    if val_ds is not None:
        sample_tokens = sampler.max_new_tokens if sampler is not None else 0
        plan = size_validation(trainer, t, hw.cuda, sample_tokens)
        if plan is not None:
            emit({"type": "log", "step": 0, "message": plan})
    info = {"resolved": resolved, "stats": stats, "tokenizer": tokenizer, "hardware": hw, "sampler": sampler}
    return trainer, callback, info
