"""SamNet in PyTorch: the reference the WGSL implementation is checked against.

Readable top to bottom; every convention here is the one the shaders follow
(parameter names and layouts are those of the Rust checkpoints, so
`model.safetensors` files load directly):

  Ê = rmsnorm(E) (unit-RMS rows); z0 = signal_scale · Ê[w]
  x_t = sqrt(ab_t) z0 + sqrt(1 - ab_t) eps
  c = fc2(silu(fc1(sinusoid(t)))); h = input(x_t)
  block: [sh1, sc1, g1, sh2, sc2, g2] = adaln(silu(c))
         h += g1 * out(attn(norm(h)(1 + sc1) + sh1))
         h += g2 * w2(silu(a) * b),  [a | b] = w13(norm(h)(1 + sc2) + sh2)
  final: [sh, sc] = adaln(silu(c)); z0_pred = out(norm(h)(1 + sc) + sh)
  logits = logit_scale · (z0_pred / signal_scale) · Êᵀ
  loss = mse_weight · mse(z0_pred, z0) + ce_weight · ce(logits, w)

diffusion.kind selects the objective over this one network (see "objectives"):
gaussian (above, the default), masked (MDLM) and hybrid (CANDI-style).
tests/reference/recipes.py trains, samples and scores all three.

Usage:
  python samnet.py fixture --config tiny_parity.json --out parity.safetensors [--device cuda]
  python samnet.py fixture --config tiny_parity_hybrid.json --out parity_hybrid.safetensors
  python samnet.py fixture --config tiny_parity_masked.json --out parity_masked.safetensors
  python samnet.py fixture --config tiny_parity_levers.json --out parity_levers.safetensors
"""

import argparse
import json
import math

import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- config

def head_kinds(model_cfg):
    return [g["kind"] for g in model_cfg["head_mix"] for _ in range(g["count"])]


def alpha_bar(diff_cfg, t):
    """ab_t for integer timesteps t (tensor), clamped to [1e-5, 1 - 1e-5]."""
    u = t.double() / diff_cfg["timesteps"]
    if diff_cfg["schedule"] == "cosine":
        s = 0.008
        f = lambda x: torch.cos((x + s) / (1 + s) * math.pi / 2) ** 2
        ab = f(u) / f(torch.zeros_like(u))
    else:
        ab = 1 - torch.sqrt(u + 1e-4)
    return ab.clamp(1e-5, 1 - 1e-5)


# ----------------------------------------------------------------------------- ops

def rmsnorm(x, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps)


def layernorm(x, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps)


def timestep_embedding(t, dim, max_period=10000.0):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64, device=t.device) / half)
    args = t.double()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def rope(x, base):
    """Rotate-half RoPE on (B, H, L, dh), positions 0..L-1."""
    B, H, L, dh = x.shape
    half = dh // 2
    inv_freq = base ** (-2.0 * torch.arange(half, dtype=torch.float64, device=x.device) / dh)
    theta = torch.arange(L, dtype=torch.float64, device=x.device)[:, None] * inv_freq[None]
    cos, sin = torch.cos(theta).to(x.dtype), torch.sin(theta).to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def linear_attention(q, k, v, eps):
    """Non-causal elu+1 attention, never forming L×L. q, k, v: (B, h, L, dh)."""
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    state = torch.einsum("bhjc,bhje->bhce", phi_k, v)
    z = phi_k.sum(dim=2)
    num = torch.einsum("bhic,bhce->bhie", phi_q, state)
    den = torch.einsum("bhic,bhc->bhi", phi_q, z) + eps
    return num / den[..., None]


def topk_attention(q, k, v, topk):
    """Softmax over each query's `topk` best keys (ties: lower key index)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    keep = min(topk, scores.shape[-1])
    best, idx = torch.topk(scores, keep, dim=-1, sorted=True)
    p = torch.softmax(best, dim=-1)
    v_kept = torch.gather(v.unsqueeze(2).expand(-1, -1, q.shape[2], -1, -1), 3,
                          idx[..., None].expand(-1, -1, -1, -1, v.shape[-1]))
    return (p[..., None] * v_kept).sum(dim=3)


def softmax_attention(q, k, v, half_window):
    L = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if half_window is not None:
        pos = torch.arange(L, device=q.device)
        far = (pos[:, None] - pos[None, :]).abs() > half_window
        scores = scores.masked_fill(far, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


# ----------------------------------------------------------------------------- model

def param_shapes(cfg):
    m, dc = cfg["model"], cfg["diffusion"]
    d, V, H, T = m["d_model"], m["vocab_size"], m["ffn_mult"] * m["d_model"], m["time_embed_dim"]
    e = embed_dim(cfg)
    shapes = {
        "embedding.weight": (V, e),
        "time.fc1.weight": (d, T), "time.fc1.bias": (d,),
        "time.fc2.weight": (d, d), "time.fc2.bias": (d,),
        "input.weight": (d, e), "input.bias": (d,),
    }
    if dc.get("self_condition"):
        shapes["input_sc.weight"] = (d, e)
    for i in range(m["n_layers"]):
        p = f"blocks.{i}."
        shapes.update({
            p + "adaln.weight": (6 * d, d), p + "adaln.bias": (6 * d,),
            p + "attn.qkv.weight": (3 * d, d), p + "attn.qkv.bias": (3 * d,),
            p + "attn.out.weight": (d, d), p + "attn.out.bias": (d,),
            p + "ffn.w13.weight": (2 * H, d), p + "ffn.w13.bias": (2 * H,),
            p + "ffn.w2.weight": (d, H), p + "ffn.w2.bias": (d,),
        })
    shapes.update({
        "final.adaln.weight": (2 * d, d), "final.adaln.bias": (2 * d,),
        "final.out.weight": (e, d), "final.out.bias": (e,),
    })
    # Extra parameters of the other objectives, after every shared one (so the
    # order, and a seeded initialisation, of the gaussian parameters is unchanged).
    if kind(cfg) == "masked":
        shapes["mask_embedding.weight"] = (1, e)  # row `vocab_size` of the input table
    if kind(cfg) == "hybrid" and dc.get("indicator"):
        shapes["input_flag.weight"] = (d,)  # added to h at corrupted positions
    return shapes


def kind(cfg):
    """diffusion.kind: "gaussian" (a config without the field), "masked" or "hybrid"."""
    return cfg["diffusion"].get("kind", "gaussian")


def embed_dim(cfg):
    """Width of the embedding table (diffusion.embed_dim; d_model when absent). A smaller
    table is read through the input projection (d×e) and written by final.out (e×d)."""
    return cfg["diffusion"].get("embed_dim") or cfg["model"]["d_model"]


def attention(cfg, x, wqkv, bqkv, wout, bout):
    m = cfg["model"]
    B, L, d = x.shape
    nh = m["n_heads"]
    dh = d // nh
    qkv = F.linear(x, wqkv, bqkv).view(B, L, 3, nh, dh).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # (B, nh, L, dh)
    outs, start = [], 0
    for group in m["head_mix"]:
        kind, n = group["kind"], group["count"]
        hq, hk, hv = q[:, start:start + n], k[:, start:start + n], v[:, start:start + n]
        if kind != "linear" and m["rope"]:
            hq, hk = rope(hq, m["rope_base"]), rope(hk, m["rope_base"])
        if kind == "linear":
            o = linear_attention(hq, hk, hv, m["linear_attn_eps"])
        elif kind == "topk":
            o = topk_attention(hq, hk, hv, m["topk"])
        elif kind == "window":
            o = softmax_attention(hq, hk, hv, m["window"] // 2)
        else:
            o = softmax_attention(hq, hk, hv, None)
        outs.append(o)
        start += n
    att = torch.cat(outs, dim=1).permute(0, 2, 1, 3).reshape(B, L, d)
    return F.linear(att, wout, bout)


def time_condition(cfg, P, t, dtype):
    """silu(c), c = fc2(silu(fc1(sinusoid(t)))): the step embedding every AdaLN reads.
    `t` (B,) in timestep units (integers for gaussian; t·T, or 0, for masked/hybrid)."""
    temb = timestep_embedding(t, cfg["model"]["time_embed_dim"]).to(dtype)
    c = F.linear(F.silu(F.linear(temb, P["time.fc1.weight"], P["time.fc1.bias"])), P["time.fc2.weight"], P["time.fc2.bias"])
    return F.silu(c)


def body(cfg, P, h, cs):
    """The network after the input: every DiT block, then the final AdaLN layer and
    projection. h (B, L, d) hidden sequence, cs (B, d) = time_condition(...). Shared by
    every diffusion.kind."""
    m = cfg["model"]
    norm = rmsnorm if m["norm"] == "rms" else layernorm
    ne = m["norm_eps"]
    for i in range(m["n_layers"]):
        p = f"blocks.{i}."
        sh1, sc1, g1, sh2, sc2, g2 = F.linear(cs, P[p + "adaln.weight"], P[p + "adaln.bias"])[:, None].chunk(6, dim=-1)
        a = attention(cfg, norm(h, ne) * (1 + sc1) + sh1, P[p + "attn.qkv.weight"], P[p + "attn.qkv.bias"],
                      P[p + "attn.out.weight"], P[p + "attn.out.bias"])
        h = h + g1 * a
        ab13 = F.linear(norm(h, ne) * (1 + sc2) + sh2, P[p + "ffn.w13.weight"], P[p + "ffn.w13.bias"])
        gate_in, up = ab13.chunk(2, dim=-1)
        h = h + g2 * F.linear(F.silu(gate_in) * up, P[p + "ffn.w2.weight"], P[p + "ffn.w2.bias"])
    sh, sc = F.linear(cs, P["final.adaln.weight"], P["final.adaln.bias"])[:, None].chunk(2, dim=-1)
    return F.linear(norm(h, ne) * (1 + sc) + sh, P["final.out.weight"], P["final.out.bias"])


def denoiser(cfg, P, x, t, sc=None, flag=None):
    """The whole network on an input sequence x (B, L, e): h = input(x) [+ input_sc(sc)]
    [+ flag · input_flag], then `body`. Returns the final projection (B, L, e): z0_pred
    for gaussian, the vector whose dot products with Ê are the logits for masked/hybrid."""
    cs = time_condition(cfg, P, t, x.dtype)
    h = F.linear(x, P["input.weight"], P["input.bias"])
    if cfg["diffusion"].get("self_condition"):
        h = h + F.linear(torch.zeros_like(x) if sc is None else sc, P["input_sc.weight"])
    if flag is not None and "input_flag.weight" in P:
        h = h + flag[..., None].to(h.dtype) * P["input_flag.weight"]
    return body(cfg, P, h, cs)


def forward(cfg, P, tokens, t, eps, weight=None, sc=None):
    """Returns (loss, mse, ce, z0_pred, logits) for tokens (B, L), t (B,), eps (B, L, e),
    with the output prior when diffusion.output_prior is set;
    `sc` (B, L, e) is the self-conditioning input (a detached earlier z0 estimate, or zeros):
    with diffusion.self_condition, h = input(x_t) + input_sc(sc)."""
    m, dc = cfg["model"], cfg["diffusion"]
    ne = m["norm_eps"]
    if weight is None:
        weight = torch.ones(tokens.shape, dtype=eps.dtype, device=eps.device)

    e_hat = rmsnorm(P["embedding.weight"], ne)
    z0 = dc["signal_scale"] * e_hat[tokens]
    ab = alpha_bar(dc, t).to(eps.dtype)
    x_t = ab.sqrt()[:, None, None] * z0 + (1 - ab).sqrt()[:, None, None] * eps

    z0_pred = denoiser(cfg, P, x_t, t, sc)

    logits = (dc["logit_scale"] / dc["signal_scale"]) * z0_pred @ e_hat.T
    if dc.get("output_prior", 0.0):
        logits = logits + dc["output_prior"] * plaid_prior(dc, x_t, e_hat, ab)
    wsum = weight.sum().clamp_min(1e-12)
    mse = (weight * ((z0_pred - z0) ** 2).sum(-1)).sum() / (z0.shape[-1] * wsum)
    ce_rows = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1), reduction="none")
    ce = (weight.reshape(-1) * ce_rows).sum() / wsum
    loss = dc["mse_weight"] * mse + dc["ce_weight"] * ce
    return loss, mse, ce, z0_pred, logits


# ----------------------------------------------------------------------------- objectives
#
# All three kinds run the same network (`denoiser`); they differ in what goes in
# and how the output is scored. Extra knobs live in the diffusion section, all
# optional (absent = the gaussian behaviour of `forward`):
#   kind            "gaussian" | "masked" | "hybrid"
#   output_prior    gaussian: weight of Plaid's prior log N(x_t; a_t·s·Ê_v, σ_t²) added
#                   to the logits (0 = off, 1 = the exact Gaussian likelihood)
#   embed_dim       width of the embedding table (see `embed_dim`)
#   time_cond       masked/hybrid: feed t·T to the step embedding (true) or 0 (false)
#   sigma_max, sigma_schedule ("linear" | "sqrt" | "square" | "rank"), sigma_normalize, indicator
#                   hybrid: noise std of corrupted positions, sigma_t = sigma_max·g(t)
#   loss_weight     masked/hybrid: "elbo" (CE/t, MDLM) or "uniform" (mean CE over corrupted)


def plaid_prior(dc, x_t, e_hat, ab):
    """log N(x_t; a·s·Ê_v, σ²I) up to a v-independent constant, for every token v:
    (a·s/σ²)·x_t·Ê_v − (a·s)²·|Ê_v|²/(2σ²). x_t (B, L, e), ab (B,) → (B, L, V)."""
    a, var = ab.sqrt()[:, None, None], (1 - ab)[:, None, None]
    s = dc["signal_scale"]
    norms = (e_hat * e_hat).sum(-1)
    return (a * s / var) * (x_t @ e_hat.T) - (a * s) ** 2 * norms / (2 * var)


def gaussian_logits(cfg, P, x_t, t, sc=None):
    """(z0_pred, logits) of the gaussian kind, with the optional output prior."""
    dc = cfg["diffusion"]
    e_hat = rmsnorm(P["embedding.weight"], cfg["model"]["norm_eps"])
    z0_pred = denoiser(cfg, P, x_t, t, sc)
    logits = (dc["logit_scale"] / dc["signal_scale"]) * z0_pred @ e_hat.T
    w = dc.get("output_prior", 0.0)
    if w:
        ab = alpha_bar(dc, t).to(x_t.dtype)
        logits = logits + w * plaid_prior(dc, x_t.float(), e_hat.float(), ab.float()).to(logits.dtype)
    return z0_pred, logits


def gaussian_loss(cfg, P, tokens, t, eps, sc=None):
    """The gaussian objective with its levers (CE-only = mse_weight 0). Returns
    (loss, mse, ce, z0_pred, logits); the same numbers as `forward` without levers."""
    dc = cfg["diffusion"]
    e_hat = rmsnorm(P["embedding.weight"], cfg["model"]["norm_eps"])
    z0 = dc["signal_scale"] * e_hat[tokens]
    ab = alpha_bar(dc, t).to(eps.dtype)
    x_t = ab.sqrt()[:, None, None] * z0 + (1 - ab).sqrt()[:, None, None] * eps
    z0_pred, logits = gaussian_logits(cfg, P, x_t, t, sc)
    mse = ((z0_pred.float() - z0.float()) ** 2).mean()
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tokens.reshape(-1))
    loss = dc["mse_weight"] * mse + dc["ce_weight"] * ce
    return loss, mse, ce, z0_pred, logits


def model_time(cfg, t):
    """masked/hybrid: continuous t in (0, 1] → the step embedding's input (t·T, or 0)."""
    dc = cfg["diffusion"]
    return t * dc["timesteps"] if dc.get("time_cond", True) else torch.zeros_like(t)


def input_table(cfg, P):
    """masked/hybrid input rows: rmsnorm(E) (unit RMS), plus the mask row (index V) for masked."""
    E = P["embedding.weight"]
    if kind(cfg) == "masked":
        E = torch.cat([E, P["mask_embedding.weight"]], dim=0)
    return rmsnorm(E, cfg["model"]["norm_eps"])


def hybrid_sigma(dc, t, e=None):
    """Noise std of a corrupted position at time t ∈ [0, 1] (increasing in t), capped at
    sigma_max. Schedules: sigma_max·t ("linear"), ·sqrt(t), ·t² — or "rank", CANDI's
    linear rank degradation: with unit-RMS rows of width e (|Ê_w − Ê_v|² ≈ 2e for unrelated
    rows) a wrong token is nearer than the right one with probability Φ(−sqrt(e/2)/σ);
    setting that to t/2 (chance at t = 1) gives σ(t) = sqrt(e/2) / Φ⁻¹(1 − t/2)."""
    sched, smax = dc.get("sigma_schedule", "linear"), dc.get("sigma_max", 10.0)
    t = torch.as_tensor(t, dtype=torch.float64)
    if sched == "rank":
        e = e or dc.get("embed_dim") or 256
        z = torch.special.ndtri((1 - t / 2).clamp(0.5, 1 - 1e-12))
        return torch.where(z > 0, math.sqrt(e / 2) / z.clamp_min(1e-30), torch.full_like(t, smax)).clamp_max(smax).float()
    g = {"linear": lambda u: u, "sqrt": lambda u: u.sqrt(), "square": lambda u: u * u}[sched]
    return (smax * g(t)).float()


def hybrid_input(dc, z, sigma):
    """A corrupted position carries z = Ê[w] + σ·eps; with sigma_normalize (default) it is
    read as z/sqrt(1+σ²) (unit scale at every σ). clean (B,L,e), z (B,L,e), sigma (B,)."""
    if dc.get("sigma_normalize", True):
        z = z / torch.sqrt(1 + sigma * sigma)[:, None, None]
    return z


def discrete_logits(cfg, P, x_in, t, sc=None, flag=None):
    """masked/hybrid logits over the V real tokens (the mask token is never predicted: it
    has no output row). x_in (B, L, e), t (B,) continuous."""
    e_hat = rmsnorm(P["embedding.weight"], cfg["model"]["norm_eps"])
    out = denoiser(cfg, P, x_in, model_time(cfg, t), sc, flag)
    return cfg["diffusion"]["logit_scale"] * out @ e_hat.T


def corrupted_inputs(cfg, P, tokens, t, corrupt, noise=None):
    """The network input of a batch whose positions `corrupt` (B, L bool) are corrupted:
    masked: the mask row there; hybrid: Ê[w] + sigma_t·noise there (scaled), Ê[w] elsewhere."""
    dc = cfg["diffusion"]
    table = input_table(cfg, P)
    if kind(cfg) == "masked":
        return table[torch.where(corrupt, cfg["model"]["vocab_size"], tokens)]
    clean = table[tokens]
    sigma = hybrid_sigma(dc, t, clean.shape[-1]).to(clean.device, clean.dtype)
    z = hybrid_input(dc, clean + sigma[:, None, None] * noise, sigma)
    return torch.where(corrupt[..., None], z, clean)


def discrete_loss(cfg, P, tokens, t, corrupt, noise=None, sc=None):
    """MDLM / CANDI loss: CE on corrupted positions, weighted 1/t (loss_weight "elbo":
    the continuous-time ELBO of the linear schedule alpha_t = 1 − t) and normalised per
    token (B·L); "uniform": mean CE over corrupted positions. Returns (loss, ce_corrupted_mean, logits)."""
    x_in = corrupted_inputs(cfg, P, tokens, t, corrupt, noise)
    logits = discrete_logits(cfg, P, x_in, t, sc, corrupt)
    ce_rows = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tokens.reshape(-1),
                              reduction="none").view(tokens.shape)
    w = corrupt.float()
    ce_mean = (ce_rows * w).sum() / w.sum().clamp_min(1)
    if cfg["diffusion"].get("loss_weight", "elbo") == "elbo":
        loss = (ce_rows * w / t[:, None].float()).sum() / tokens.numel()
    else:
        loss = ce_mean
    return loss, ce_mean, logits


# ----------------------------------------------------------------------------- fixture

def make_fixture(cfg, out, device, seed=0):
    """Random (non-zero everywhere, so every path carries gradient) weights and
    inputs, computed in float64: loss, mse, ce and every parameter gradient."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    m = cfg["model"]
    B, L = cfg["train"]["batch_size"], cfg["train"]["seq_len"]
    P = {}
    for name, shape in param_shapes(cfg).items():
        scale = 1.0 if name == "embedding.weight" else (0.3 if name.endswith("bias") else 1.0 / math.sqrt(shape[-1]))
        # Rounded to f32 first: the GPU sees exactly these values.
        P[name] = (torch.randn(shape) * scale).double().to(device).requires_grad_()
    tokens = torch.randint(0, m["vocab_size"], (B, L), device=device)
    t = torch.randint(1, cfg["diffusion"]["timesteps"] + 1, (B,), device=device)
    eps = torch.randn(B, L, embed_dim(cfg)).double().to(device)
    if kind(cfg) in ("hybrid", "masked"):
        return save_discrete_fixture(cfg, out, P, tokens, t, eps, device)
    weight = (torch.rand(B, L, dtype=torch.float64, device=device) > 0.2).double()
    sc = torch.randn(B, L, embed_dim(cfg)).double().to(device) * 0.5 if cfg["diffusion"].get("self_condition") else None
    loss, mse, ce, z0_pred, logits = forward(cfg, P, tokens, t, eps, weight, sc)
    loss.backward()
    tensors = {f"param.{k}": v.detach().float().cpu().contiguous() for k, v in P.items()}
    tensors.update({f"grad.{k}": v.grad.float().cpu().contiguous() for k, v in P.items()})
    tensors.update({
        "input.tokens": tokens.float().cpu(), "input.t": t.float().cpu(),
        "input.eps": eps.float().cpu(), "input.weight": weight.float().cpu(),
        **({"input.sc": sc.float().cpu()} if sc is not None else {}),
        "output.loss": loss.detach().float().cpu().reshape(1), "output.mse": mse.detach().float().cpu().reshape(1),
        "output.ce": ce.detach().float().cpu().reshape(1),
        "output.z0_pred": z0_pred.detach().float().cpu().contiguous(),
    })
    save_file(tensors, out, metadata={"config": json.dumps(cfg), "torch": torch.__version__, "dtype": "float64",
                                      "device": str(device)})
    print(f"loss {loss.item():.6f} mse {mse.item():.6f} ce {ce.item():.6f} -> {out}")


def save_discrete_fixture(cfg, out, P, tokens, t, eps, device):
    """masked/hybrid: t = k/T per sequence, about half the positions corrupted (eps is
    hybrid's noise there), loss = the 1/t-weighted CE over B·L; loss, ce over the corrupted positions,
    the logits and every parameter gradient."""
    from safetensors.torch import save_file

    corrupt = torch.rand(tokens.shape, device=device) < 0.5
    corrupt[:, 0] = True  # every sequence carries loss
    t_cont = t.double() / cfg["diffusion"]["timesteps"]
    loss, ce_mean, logits = discrete_loss(cfg, P, tokens, t_cont, corrupt, eps)
    loss.backward()
    tensors = {f"param.{k}": v.detach().float().cpu().contiguous() for k, v in P.items()}
    tensors.update({f"grad.{k}": v.grad.float().cpu().contiguous() for k, v in P.items()})
    tensors.update({
        "input.tokens": tokens.float().cpu(), "input.t": t.float().cpu(),
        "input.eps": eps.float().cpu(), "input.corrupt": corrupt.float().cpu(),
        "output.loss": loss.detach().float().cpu().reshape(1),
        "output.ce_corrupted": ce_mean.detach().float().cpu().reshape(1),
        "output.logits": logits.detach().float().cpu().contiguous(),
    })
    save_file(tensors, out, metadata={"config": json.dumps(cfg), "torch": torch.__version__, "dtype": "float64",
                                      "device": str(device)})
    print(f"loss {loss.item():.6f} ce(corrupted) {ce_mean.item():.6f} -> {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    fx = sub.add_parser("fixture")
    fx.add_argument("--config", required=True)
    fx.add_argument("--out", required=True)
    fx.add_argument("--device", default="cpu")
    args = ap.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    make_fixture(config, args.out, torch.device(args.device))
