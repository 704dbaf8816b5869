"""GPU micro-benchmark: attention forward + backward over one packed micro-batch, each kernel on the same data.

    python3 benchmarks/bench_attention_gpu.py [TOKENS] [--flex]

Llama-3-8B attention (32 query heads, 8 KV heads, head dim 128, bf16), TOKENS flattened tokens (default
8,192 = 4 rows x 2,048, what TRL's padding-free collator gives for micro-batch 4) cut into documents of
lognormal length (median 350, like the peer harness). Kernels:
  sdpa_dense  today's reference path: one SDPA over the whole flattened row with a block-diagonal mask
  varlen      torch.nn.attention.varlen.varlen_attn, per document (core.training.packed_attention)
  aten        ATen's flash op with cumulative lengths, same kernel through our autograd function
  loop        SDPA once per document (is_causal), the way a per-document loop runs it
  flex        flex_attention with a document block mask (compiled; only with --flex)
Prints one JSON line per kernel: milliseconds per forward+backward (median of 10 after 3 warm-ups) and the
largest difference of its output from the per-document loop's.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def doc_lengths(total: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    out: list[int] = []
    while sum(out) < total:
        out.append(int(min(2048, max(32, rng.lognormvariate(math.log(350), 0.8)))))
    out[-1] -= sum(out) - total
    return [n for n in out if n > 0]


def main() -> None:
    import torch
    import torch.nn.functional as F

    from core.training import packed_attention as pa

    tokens = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 8192
    lengths = doc_lengths(tokens)
    dev = "cuda"
    hq, hkv, d = 32, 8, 128
    torch.manual_seed(0)
    q0 = torch.randn(tokens, hq, d, device=dev, dtype=torch.bfloat16)
    k0 = torch.randn(tokens, hkv, d, device=dev, dtype=torch.bfloat16)
    v0 = torch.randn(tokens, hkv, d, device=dev, dtype=torch.bfloat16)
    g = torch.randn(tokens, hq, d, device=dev, dtype=torch.bfloat16)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=dev)
    longest = max(lengths)
    scale = d**-0.5
    doc = torch.repeat_interleave(torch.arange(len(lengths), device=dev), torch.tensor(lengths, device=dev))

    def sdpa_dense(q, k, v):  # type: ignore[no-untyped-def]
        idx = torch.arange(tokens, device=dev)
        mask = (doc[:, None] == doc[None, :]) & (idx[:, None] >= idx[None, :])
        k = k.repeat_interleave(hq // hkv, dim=1)
        v = v.repeat_interleave(hq // hkv, dim=1)
        o = F.scaled_dot_product_attention(
            q.transpose(0, 1)[None],
            k.transpose(0, 1)[None],
            v.transpose(0, 1)[None],
            attn_mask=mask,
            scale=scale,
        )
        return o[0].transpose(0, 1)

    def varlen(q, k, v):  # type: ignore[no-untyped-def]
        return pa._call_public_varlen(pa._varlen_public(), q, k, v, cu, longest, scale)

    aten_fn = pa._aten_flash()

    def aten(q, k, v):  # type: ignore[no-untyped-def]
        return aten_fn(q, k, v, cu, longest, scale)

    def loop(q, k, v):  # type: ignore[no-untyped-def]
        bounds = cu.tolist()
        outs = [
            F.scaled_dot_product_attention(
                q[a:b].transpose(0, 1),
                k[a:b].transpose(0, 1),
                v[a:b].transpose(0, 1),
                is_causal=True,
                scale=scale,
                enable_gqa=True,
            ).transpose(0, 1)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        return torch.cat(outs)

    kernels = {"sdpa_dense": sdpa_dense, "varlen": varlen, "aten": aten, "loop": loop}
    if "--flex" in sys.argv:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        flex_c = torch.compile(flex_attention)

        def mask_mod(b, h, qi, ki):  # type: ignore[no-untyped-def]
            return (doc[qi] == doc[ki]) & (qi >= ki)

        def flex(q, k, v):  # type: ignore[no-untyped-def]
            bm = create_block_mask(mask_mod, None, None, tokens, tokens, device=dev)
            o = flex_c(
                q.transpose(0, 1)[None],
                k.transpose(0, 1)[None],
                v.transpose(0, 1)[None],
                block_mask=bm,
                scale=scale,
                enable_gqa=True,
            )
            return o[0].transpose(0, 1)

        kernels["flex"] = flex

    with torch.no_grad():
        ref = loop(q0, k0, v0).float()
    info = {
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "tokens": tokens,
        "documents": len(lengths),
        "longest": longest,
        "default_kernel": pa.kernel_name(),
    }
    print(json.dumps(info), flush=True)
    for name, fn in kernels.items():
        try:
            q, k, v = (t.clone().requires_grad_() for t in (q0, k0, v0))
            t_c = time.perf_counter()
            out = fn(q, k, v)
            out.backward(g)
            torch.cuda.synchronize()
            first_s = time.perf_counter() - t_c
            diff = float((out.detach().float() - ref).abs().max())
            times = []
            for i in range(13):
                q.grad = k.grad = v.grad = None
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                fn(q, k, v).backward(g)
                torch.cuda.synchronize()
                if i >= 3:
                    times.append(1000 * (time.perf_counter() - t0))
            times.sort()
            row = {
                "kernel": name,
                "fwd_bwd_ms": round(times[len(times) // 2], 3),
                "first_call_s": round(first_s, 2),
                "max_abs_diff_vs_loop": round(diff, 4),
            }
        except Exception as exc:  # noqa: BLE001 - report and go on
            row = {"kernel": name, "error": repr(exc)[:400]}
        print(json.dumps(row), flush=True)
    if os.environ.get("ATTN_PROFILE_SIG"):
        import inspect

        print(json.dumps({"varlen_signature": str(inspect.signature(pa._varlen_public()))}))


if __name__ == "__main__":
    main()
