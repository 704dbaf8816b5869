"""Where the GPU engine keeps its activations (issue 17): per decoder layer, kept for the backward pass,
recomputed from its input held on the GPU, or recomputed from its input held in pinned CPU memory; and the
MLP run in tiles over the sequence. The estimate (core/training/estimate.py `choose_plan`) picks the plan
from the memory the card has; `install` applies it to a loaded model.

Why: with plain gradient checkpointing an 8B model at 128k tokens still keeps every layer's input on the GPU
(32 x 1 GiB), and one layer's recomputation holds the MLP's 14,336-wide intermediates for the whole sequence
(3.5 GiB each). Inputs in pinned CPU memory and an MLP computed a few thousand tokens at a time remove both,
so what grows with the length on the GPU is a handful of hidden-size vectors. At short lengths the memory
left under the card's size keeps some layers' activations instead (no recomputation: faster).

The mechanism (our own, in the spirit of DeepSpeed's ALST and Unsloth's offloaded checkpointing):
- `_Recompute`, an autograd function around one decoder layer: the forward runs without building a graph and
  keeps only the layer's input (on the GPU, or copied to pinned CPU memory on a side stream); the backward
  brings the input back, runs the layer again with gradients and back-propagates through it. The random
  state (dropout) and autocast state of the forward are restored for the replay, so the gradients are the
  same as without recomputation.
- `_TiledMLP`, an autograd function around an MLP: the forward runs it tile by tile without a graph and keeps
  only its input; the backward recomputes each tile with gradients and back-propagates it, so at most one
  tile's intermediates exist at a time. Exact: an MLP acts on each token on its own.

torch is imported inside functions (core/ imports no heavy library at import time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_CACHE_KWARGS = ("past_key_values", "past_key_value", "layer_past", "cache")


@dataclass(frozen=True)
class MemoryPlan:
    """kept: the last `kept` decoder layers keep their activations (the others are recomputed in the backward
    pass); offload: recomputed layers' inputs wait in pinned CPU memory; mlp_tile: tokens per MLP tile (0: the
    MLP runs over the whole micro-batch at once)."""

    kept: int = 0
    offload: bool = False
    mlp_tile: int = 0

    def describe(self, layers: int) -> str:
        """The plan in words, for the run log."""
        recomputed = max(0, layers - self.kept)
        if recomputed == 0:
            parts = ["every layer keeps its activations (no recomputation)"]
        elif self.kept:
            parts = [f"{self.kept} of {layers} layers keep their activations, {recomputed} are recomputed"]
        else:
            parts = [f"all {layers} layers are recomputed in the backward pass"]
        if self.offload and recomputed:
            parts.append("their inputs wait in CPU memory")
        if self.mlp_tile:
            parts.append(f"the MLP runs {self.mlp_tile:,} tokens at a time")
        return "Memory plan: " + "; ".join(parts) + "."


# --- state captured in the forward and restored for the replay -------------------------------------------
def _rng_state(device: Any) -> tuple[Any, Any]:
    import torch

    gpu = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), gpu


class _Replay:
    """Context for recomputing: the forward's random state (when dropout is active) and autocast state."""

    def __init__(self, device: Any, rng: tuple[Any, Any] | None, autocast: tuple[bool, Any]) -> None:
        self.device, self.rng, self.autocast = device, rng, autocast

    @staticmethod
    def capture(device: Any, needs_rng: bool) -> _Replay:
        import torch

        kind = device.type
        autocast = (torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind))
        return _Replay(device, _rng_state(device) if needs_rng else None, autocast)

    def __enter__(self) -> None:
        import contextlib

        import torch

        self._stack = contextlib.ExitStack()
        if self.rng is not None:
            cuda = self.device.type == "cuda"
            self._stack.enter_context(torch.random.fork_rng(devices=[self.device] if cuda else []))
            torch.set_rng_state(self.rng[0])
            if cuda:
                torch.cuda.set_rng_state(self.rng[1], self.device)
        self._stack.enter_context(torch.enable_grad())
        enabled, dtype = self.autocast
        self._stack.enter_context(torch.autocast(self.device.type, dtype=dtype, enabled=enabled))

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()


# --- where recomputed layers' inputs wait -----------------------------------------------------------------
class HostStore:
    """Copies tensors to pinned CPU memory on a side stream (overlapping the next layer's compute) and back.
    On a CPU tensor it keeps a copy (the same code path, for tests)."""

    def __init__(self) -> None:
        self._stream: Any = None

    def put(self, tensor: Any) -> tuple[Any, Any]:
        import torch

        if tensor.device.type != "cuda":
            return tensor.detach().clone(), None
        if self._stream is None:
            self._stream = torch.cuda.Stream(tensor.device)
        host = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu", pin_memory=True)
        self._stream.wait_stream(torch.cuda.current_stream(tensor.device))
        with torch.cuda.stream(self._stream):
            host.copy_(tensor, non_blocking=True)
        tensor.record_stream(self._stream)  # its GPU memory is not reused before the copy is done
        done = torch.cuda.Event()
        done.record(self._stream)
        return host, (done, tensor.device)

    @staticmethod
    def get(slot: tuple[Any, Any]) -> Any:
        import torch

        host, where = slot
        if where is None:
            return host
        done, device = where
        torch.cuda.current_stream(device).wait_event(done)
        return host.to(device, non_blocking=True)


def _autograd_functions() -> tuple[Any, Any]:
    import torch

    class _Recompute(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, run: Any, store: Any, needs_rng: bool, extra: list[Any], hidden: Any) -> Any:
            ctx.run, ctx.store = run, store
            ctx.replay = _Replay.capture(hidden.device, needs_rng)
            with torch.no_grad():
                out = run(hidden)
            if isinstance(out, tuple):
                extra.extend(out[1:])
                out = out[0]
            if store is not None:
                ctx.slot = store.put(hidden)
            else:
                ctx.save_for_backward(hidden)
            return out

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            hidden = ctx.store.get(ctx.slot) if ctx.store is not None else ctx.saved_tensors[0]
            ctx.slot = None
            hidden = hidden.detach().requires_grad_(True)
            with ctx.replay:
                out = ctx.run(hidden)
            if isinstance(out, tuple):
                out = out[0]
            torch.autograd.backward(out, grad)
            return None, None, None, None, hidden.grad

    class _TiledMLP(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, fn: Any, tile: int, needs_rng: bool, x: Any) -> Any:
            ctx.fn, ctx.tile = fn, tile
            ctx.replay = _Replay.capture(x.device, needs_rng)
            out = None
            with torch.no_grad():
                for start in range(0, x.shape[-2], tile):
                    part = fn(x.narrow(-2, start, min(tile, x.shape[-2] - start)))
                    if out is None:
                        out = x.new_empty((*x.shape[:-1], part.shape[-1]), dtype=part.dtype)
                    out.narrow(-2, start, part.shape[-2]).copy_(part)
            ctx.save_for_backward(x)
            return out

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (x,) = ctx.saved_tensors
            dx = torch.empty_like(x)
            with ctx.replay:
                for start in range(0, x.shape[-2], ctx.tile):
                    n = min(ctx.tile, x.shape[-2] - start)
                    part = x.narrow(-2, start, n).detach().requires_grad_(True)
                    torch.autograd.backward(ctx.fn(part), grad.narrow(-2, start, n))
                    dx.narrow(-2, start, n).copy_(part.grad)
            return None, None, None, dx

    return _Recompute, _TiledMLP


_FUNCTIONS: tuple[Any, Any] | None = None


def _functions() -> tuple[Any, Any]:
    global _FUNCTIONS
    if _FUNCTIONS is None:
        _FUNCTIONS = _autograd_functions()
    return _FUNCTIONS


# --- installing a plan on a model -------------------------------------------------------------------------
def decoder_layers(model: Any) -> list[Any]:
    """The model's decoder layers (the first ModuleList of *DecoderLayer modules), or [] if it has none."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module):
            if all(type(m).__name__.endswith("DecoderLayer") for m in module):
                return list(module)
    return []


def _has_dropout(module: Any) -> bool:
    from torch import nn

    return any(isinstance(m, nn.Dropout) and m.p > 0 for m in module.modules())


def _tileable(mlp: Any) -> bool:
    """A dense MLP (gate/up/down or fc1/fc2), which acts on each token on its own; not a mixture of experts
    (its router's auxiliary loss spans the sequence)."""
    names = {n for n, _ in mlp.named_children()}
    return {"gate_proj", "up_proj", "down_proj"} <= names or {"fc1", "fc2"} <= names


def _wrap_layer(layer: Any, store: HostStore | None) -> None:
    import torch

    recompute, _ = _functions()
    inner = layer.forward
    needs_rng = _has_dropout(layer)

    def forward(hidden_states: Any, *args: Any, **kwargs: Any) -> Any:
        if not (layer.training and torch.is_grad_enabled()):
            return inner(hidden_states, *args, **kwargs)
        for name in _CACHE_KWARGS:  # a recomputed layer must not write a KV cache twice
            if kwargs.get(name) is not None:
                kwargs[name] = None
        if "use_cache" in kwargs:
            kwargs["use_cache"] = False
        if (
            not hidden_states.requires_grad
        ):  # the first layer (frozen embeddings): the LoRA grads need a backward
            hidden_states = hidden_states.detach().requires_grad_(True)
        extra: list[Any] = []
        out = recompute.apply(lambda h: inner(h, *args, **kwargs), store, needs_rng, extra, hidden_states)
        return (out, *extra) if extra else out

    forward._whetstone_plan = True  # type: ignore[attr-defined]
    layer._whetstone_inner_forward = inner
    layer.forward = forward


def _wrap_mlp(mlp: Any, tile: int) -> None:
    _, tiled = _functions()
    inner = mlp.forward
    needs_rng = _has_dropout(mlp)

    def forward(x: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or x.dim() < 2 or x.shape[-2] <= tile:
            return inner(x, *args, **kwargs)
        return tiled.apply(inner, tile, needs_rng, x)

    forward._whetstone_plan = True  # type: ignore[attr-defined]
    mlp._whetstone_inner_forward = inner
    mlp.forward = forward


def _unwrap(module: Any) -> None:
    inner = module.__dict__.pop("_whetstone_inner_forward", None)
    if not getattr(module.__dict__.get("forward"), "_whetstone_plan", False):
        return  # ours was replaced since (Liger patches modules when training starts): keep what is there
    if inner is not None:
        own = getattr(inner, "__self__", None) is module
        if own and getattr(inner, "__func__", None) is getattr(type(module), "forward", None):
            module.__dict__.pop("forward", None)  # the class's own forward again
        else:
            module.forward = inner


def install(model: Any, plan: MemoryPlan) -> int:
    """Apply `plan` to a loaded model (PEFT-wrapped or not). Replaces an earlier plan. Call it when training
    starts (`callback`): the Trainer applies Liger's kernels in train(), replacing the MLPs' forward.
    Returns the number of decoder layers found (0: nothing installed). The model's own (transformers)
    gradient checkpointing must be off: this replaces it."""
    layers = decoder_layers(model)
    if not layers:
        return 0
    store = HostStore() if plan.offload else None
    recomputed = len(layers) - max(0, plan.kept)
    for index, layer in enumerate(layers):
        _unwrap(layer)
        mlp = getattr(layer, "mlp", None)
        if mlp is not None:
            _unwrap(mlp)
            if plan.mlp_tile > 0 and _tileable(mlp):
                _wrap_mlp(mlp, plan.mlp_tile)
        if index < recomputed:
            _wrap_layer(layer, store)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "use_cache"):
        config.use_cache = False
    return len(layers)


def callback(plan: MemoryPlan, on_install: Any = None) -> Any:
    """A TrainerCallback that installs `plan` on the model when training starts (after the Trainer patched
    the model with Liger's kernels, which it does in train(), again on a resume); `on_install(layers)` is
    called after each install."""
    from transformers import TrainerCallback

    class MemoryPlanCallback(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            if model is not None:
                layers = install(model, plan)
                if on_install is not None:
                    on_install(layers)

    return MemoryPlanCallback()
