"""PyTorch baseline of one SamNet training step, the same model and step as
`samnet bench train` (tests/reference/samnet.py's model): noise, the
self-conditioning first pass when the config has it, forward, backward,
global-norm clipping and AdamW. Prints one JSON object.

  python3 bench/torch_baseline.py --config assets/configs/phase1.json [--compile] [--bf16]
  python3 bench/torch_baseline.py --matmul 4096
  python3 bench/torch_baseline.py --matmul-like samnet_matmul.json

--matmul-like times cuBLAS on every product `samnet bench matmul` timed
(same M, N, K and transposes) in f32 (TF32 off), TF32, f16 and bf16.
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
import samnet  # noqa: E402


def time_product(m, n, k, trans_a, trans_b, dtype, device, reps=10):
    """Seconds per op(A)·op(B), operands stored as samnet stores them."""
    a = torch.randn(*((k, m) if trans_a else (m, k)), device=device, dtype=dtype)
    b = torch.randn(*((n, k) if trans_b else (k, n)), device=device, dtype=dtype)
    op_a = a.t() if trans_a else a
    op_b = b.t() if trans_b else b
    for _ in range(3):
        op_a @ op_b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        op_a @ op_b
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps


def matmul_like(report, device):
    """cuBLAS at each distinct product of a samnet matmul report."""
    seen, rows = set(), []
    for r in report["results"] + report["shapes"]:
        key = (r["name"], r["m"], r["n"], r["k"], r["trans_a"], r["trans_b"])
        if key in seen:
            continue
        seen.add(key)
        for label, dtype, tf32 in [("f32 (TF32 off)", torch.float32, False), ("tf32", torch.float32, True),
                                   ("f16", torch.float16, False), ("bf16", torch.bfloat16, False)]:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            s = time_product(*key[1:], dtype, device)
            rows.append({"name": key[0], "m": key[1], "n": key[2], "k": key[3], "trans_a": key[4],
                         "trans_b": key[5], "label": label, "ms": s * 1e3,
                         "tflops": 2 * key[1] * key[2] * key[3] / s / 1e12})
    torch.backends.cuda.matmul.allow_tf32 = False
    return {"bench": "matmul_like", "impl": "pytorch", "device": torch.cuda.get_device_name(), "rows": rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--seq", type=int)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--matmul", type=int, help="instead: time an N³ f32 matrix product (TF32 off)")
    ap.add_argument("--matmul-like", help="instead: time the products of this `samnet bench matmul` JSON")
    args = ap.parse_args()
    if args.matmul_like:
        print(json.dumps(matmul_like(json.load(open(args.matmul_like)), args.device)))
        return
    if not (args.config or args.matmul):
        ap.error("--config is required (or --matmul / --matmul-like)")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if args.matmul:
        n = args.matmul
        a, b = torch.randn(n, n, device=args.device), torch.randn(n, n, device=args.device)
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        torch.cuda.synchronize()
        s = (time.perf_counter() - start) / 10
        print(json.dumps({"bench": "matmul", "impl": "pytorch", "size": n, "ms": s * 1e3, "tflops": 2 * n**3 / s / 1e12}))
        return
    cfg = json.load(open(args.config))
    if args.batch:
        cfg["train"]["batch_size"] = args.batch
    if args.seq:
        cfg["train"]["seq_len"] = args.seq
        cfg["model"]["max_seq_len"] = max(cfg["model"]["max_seq_len"], args.seq)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    m, t = cfg["model"], cfg["train"]
    B, L, d = t["batch_size"], t["seq_len"], m["d_model"]
    torch.manual_seed(0)
    params = {n: (torch.randn(s, device=dev) * (1.0 if n == "embedding.weight" else 0.02)).requires_grad_()
              for n, s in samnet.param_shapes(cfg).items()}
    decay = [p for n, p in params.items() if n.endswith("weight") and n != "embedding.weight"]
    no_decay = [p for n, p in params.items() if not (n.endswith("weight") and n != "embedding.weight")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": t["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=t["lr"], betas=(t["beta1"], t["beta2"]), eps=t["adam_eps"])
    self_condition = cfg["diffusion"].get("self_condition", False)

    def loss_fn(tokens, ts, eps, sc):
        return samnet.forward(cfg, params, tokens, ts, eps, None, sc)[0]

    def first_pass(tokens, ts, eps):
        return samnet.forward(cfg, params, tokens, ts, eps, None, None)[3]

    if args.compile:
        loss_fn = torch.compile(loss_fn)
        first_pass = torch.compile(first_pass)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16)

    def step():
        tokens = torch.randint(0, m["vocab_size"], (B, L), device=dev)
        ts = torch.randint(1, cfg["diffusion"]["timesteps"] + 1, (B,), device=dev)
        eps = torch.randn(B, L, d, device=dev)
        with autocast:
            sc = None
            if self_condition:
                with torch.no_grad():
                    mask = (torch.rand(B, 1, 1, device=dev) < 0.5).float()
                    sc = first_pass(tokens, ts, eps).float() * mask
            loss = loss_fn(tokens, ts, eps, sc)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.values(), t["grad_clip"])
        opt.step()

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    ms = (time.perf_counter() - start) * 1e3 / args.steps
    print(json.dumps({
        "bench": "train", "impl": "pytorch", "mode": ("compile" if args.compile else "eager") + ("-bf16" if args.bf16 else "-f32"),
        "device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__, "batch": B, "seq": L,
        "step_ms": ms, "tokens_per_s": B * L / ms * 1e3, "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "self_condition": self_condition,
    }))


if __name__ == "__main__":
    main()
