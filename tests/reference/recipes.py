"""Recipe search for "diffusion that writes": train one SamNet objective
(diffusion.kind = gaussian | masked | hybrid, tests/reference/samnet.py) on a
char-level text under a time or step budget, then sample 8 seeds and score
them with the SPEC's metrics, computed exactly as core/src/metrics.rs does.

  python3 tests/reference/recipes.py --config assets/configs/phase1.json \\
      --data FILE --set diffusion.kind=masked --set sample.temperature=0.6 \\
      --minutes 4 --out OUT.json [--device cuda] [--steps N] [--bf16] [--compile] \\
      [--save W.pt] [--grid quick|full|none]
  python3 tests/reference/recipes.py --resample W.pt --data FILE --out R.json [--grid full]
  python3 tests/reference/recipes.py --selftest [--data FILE]

Every `--set section.key=value` (value parsed as JSON, else a string) lands in
the config and is recorded in the output. Sections: model, diffusion, train,
and sample (the sampler: temperature, steps, top_p, order random|confident,
x0 pred|clamp|softmax for gaussian, update ddim|renoise and x0 soft|hard for
hybrid).

Data and metrics follow the Rust code: vocabulary = sorted distinct characters
(core/src/tokenizer.rs char_level); a single text document's first
len·9/10 tokens train, the rest validates (core/src/data.rs); words are
maximal runs of [A-Za-z], matched case-sensitively against the training
split's words; diversity = distinct char 8-grams / all; novelty = share of
32-char windows (stride 16) not found verbatim in the training split.

LR schedule: linear warmup then cosine decay to min_lr_ratio, as a function of
progress p ∈ [0, 1]. With --steps, p = step/steps. With a time budget, p is
elapsed training time / training time budget (time-based): under CUDA MPS with
five processes starting together the speed of the first 50 steps is not the
speed of the rest (start-up, neighbours finishing), so a step estimate made
early would either cut the decay short or leave the LR high at the end; a
time-based p always ends the decay exactly when the budget does. The step count
reached is recorded.

Output JSON (rewritten atomically at every log line and after every sampler
row, so a killed process leaves what it had): status, config, overrides,
steps, wall_s, train_loss, log rows, val, metrics + samples of the run's own
sampler settings, and `rows` for the sampler grid.
"""

import time

START = time.time()

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import samnet  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
QUALITY_SEEDS = 8
SAMPLE_LEN = 256
SPEC_STEPS = 64
VAL_WINDOWS = 16
GAUSS_EVAL_T = [50, 250, 500, 750, 950]
DISCRETE_EVAL_T = [0.1, 0.3, 0.5, 0.7, 0.9]
BAR = {"valid_word_rate": 0.85, "valid_long_word_rate": 0.75, "diversity": 0.9, "novelty": 0.9}


# ----------------------------------------------------------------------------- metrics (core/src/metrics.rs)

WORD = re.compile(r"[A-Za-z]+")


def words(text):
    return WORD.findall(text)


def vocabulary(text):
    return set(words(text))


def valid_rate(samples, vocab, min_len=1):
    total = valid = 0
    for s in samples:
        for w in words(s):
            if len(w) >= min_len:
                total += 1
                valid += w in vocab
    return 0.0 if total == 0 else valid / total


def char_windows(s, n, stride):
    if len(s) < n:
        return []
    return [s[i:i + n] for i in range(0, len(s) - n + 1, stride)]


def diversity(samples):
    grams = [g for s in samples for g in char_windows(s, 8, 1)]
    return 0.0 if not grams else len(set(grams)) / len(grams)


def novelty(samples, train):
    wins = [w for s in samples for w in char_windows(s, 32, 16)]
    return 0.0 if not wins else sum(w not in train for w in wins) / len(wins)


def quality(samples, train_text, vocab=None):
    vocab = vocabulary(train_text) if vocab is None else vocab
    q = {
        "valid_word_rate": valid_rate(samples, vocab, 1),
        "valid_long_word_rate": valid_rate(samples, vocab, 3),
        "diversity": diversity(samples),
        "novelty": novelty(samples, train_text),
    }
    q["passes_bar"] = all(q[k] >= v for k, v in BAR.items())
    return q


# ----------------------------------------------------------------------------- data (core/src/data.rs, tokenizer.rs)

class Data:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.text = f.read()
        self.chars = sorted(set(self.text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        ids = [self.index[c] for c in self.text]
        cut = len(ids) * 9 // 10
        self.train_ids, self.val_ids = ids[:cut], ids[cut:]
        self.train_text = self.text[:cut]  # char-level: token i = char i
        self.vocab = vocabulary(self.train_text)

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)

    def to(self, dev):
        self.train_t = torch.tensor(self.train_ids, dtype=torch.long, device=dev)
        self.val_t = torch.tensor(self.val_ids, dtype=torch.long, device=dev)
        return self

    def batch(self, B, L, gen):
        starts = torch.randint(0, len(self.train_ids) - L + 1, (B,), device=self.train_t.device, generator=gen)
        return self.train_t[starts[:, None] + torch.arange(L, device=starts.device)]

    def val_windows(self, count, L):
        starts = len(self.val_ids) - L
        idx = [i * starts // (count - 1) if count > 1 else 0 for i in range(count)]
        return torch.stack([self.val_t[s:s + L] for s in idx])


# ----------------------------------------------------------------------------- config

def set_path(cfg, key, raw):
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    section, _, name = key.partition(".")
    if not name:
        raise SystemExit(f"--set {key}: expected section.key=value")
    cfg.setdefault(section, {})[name] = value


def apply_overrides(cfg, sets):
    cfg = copy.deepcopy(cfg)
    for s in sets:
        key, eq, raw = s.partition("=")
        if not eq:
            raise SystemExit(f"--set {s}: expected section.key=value")
        set_path(cfg, key.strip(), raw.strip())
    return cfg


def sample_defaults(cfg):
    k = samnet.kind(cfg)
    sc = {"steps": SPEC_STEPS, "temperature": 0.0 if k == "gaussian" else 0.6, "top_p": 1.0, "order": "random",
          "x0": "clamp" if cfg["diffusion"].get("clamp", True) else "pred", "update": "ddim", "len": SAMPLE_LEN}
    if k == "hybrid":
        sc["x0"] = "soft"
    sc.update(cfg.get("sample", {}))
    return sc


# ----------------------------------------------------------------------------- model

def init_params(cfg, dev, seed):
    """DiT init as core/src/model/params.rs: N(0,1) embedding, N(0,0.02²) timestep MLP,
    Xavier-uniform linears, zero biases, zero AdaLN."""
    g = torch.Generator().manual_seed(seed)
    P = {}
    for name, shape in samnet.param_shapes(cfg).items():
        if name in ("embedding.weight", "mask_embedding.weight"):
            w = torch.randn(shape, generator=g)
        elif name.startswith("time.") and name.endswith("weight"):
            w = torch.randn(shape, generator=g) * 0.02
        elif "adaln" in name or name.endswith("bias") or name == "input_flag.weight":
            w = torch.zeros(shape)
        else:
            bound = math.sqrt(6.0 / (shape[0] + shape[1]))
            w = (torch.rand(shape, generator=g) * 2 - 1) * bound
        P[name] = w.to(dev).requires_grad_()
    return P


def lr_at(tc, p):
    warm = tc.get("warmup_ratio", 0.02)
    if warm > 0 and p < warm:
        return tc["lr"] * p / warm
    q = min(1.0, (p - warm) / max(1e-9, 1 - warm))
    mn = tc.get("min_lr_ratio", 0.1)
    return tc["lr"] * (mn + (1 - mn) * 0.5 * (1 + math.cos(math.pi * q)))


def train_loss(cfg, P, tokens, gen):
    """One batch's loss for the config's kind; returns (loss, {stat: tensor})."""
    dc = cfg["diffusion"]
    B, L = tokens.shape
    dev = tokens.device
    k = samnet.kind(cfg)
    sc_on = dc.get("self_condition", False)
    if k == "gaussian":
        t = torch.randint(1, dc["timesteps"] + 1, (B,), device=dev, generator=gen)
        eps = torch.randn(B, L, samnet.embed_dim(cfg), device=dev, generator=gen)
        sc = None
        if sc_on:
            with torch.no_grad():
                keep = (torch.rand(B, 1, 1, device=dev, generator=gen) < 0.5).float()
                sc = samnet.gaussian_loss(cfg, P, tokens, t, eps, None)[3].float() * keep
        loss, mse, ce, _, _ = samnet.gaussian_loss(cfg, P, tokens, t, eps, sc)
        return loss, {"mse": mse, "ce": ce}
    # masked / hybrid: low-discrepancy t (MDLM), t ∈ [eps, 1)
    eps_t = dc.get("t_min", 1e-3)
    u = (torch.rand((), device=dev, generator=gen) + torch.arange(B, device=dev) / B) % 1.0
    t = eps_t + (1 - eps_t) * u
    corrupt = torch.rand(B, L, device=dev, generator=gen) < t[:, None]
    noise = torch.randn(B, L, samnet.embed_dim(cfg), device=dev, generator=gen) if k == "hybrid" else None
    sc = None
    if sc_on:
        with torch.no_grad():
            keep = (torch.rand(B, 1, 1, device=dev, generator=gen) < 0.5).float()
            logits = samnet.discrete_loss(cfg, P, tokens, t, corrupt, noise, None)[2]
            sc = soft_embedding(cfg, P, logits) * keep
    loss, ce, _ = samnet.discrete_loss(cfg, P, tokens, t, corrupt, noise, sc)
    return loss, {"ce_corrupted": ce}


def soft_embedding(cfg, P, logits):
    """softmax(logits)·Ê: the self-conditioning input of masked/hybrid (and x̂0 of hybrid)."""
    e_hat = samnet.rmsnorm(P["embedding.weight"].float(), cfg["model"]["norm_eps"])
    return torch.softmax(logits.float(), -1) @ e_hat


# ----------------------------------------------------------------------------- validation

@torch.no_grad()
def validation(cfg, P, data, L, autocast):
    """gaussian: mse/ce at t ∈ {50,250,500,750,950} (self-conditioned models evaluated with
    their own first-pass estimate). masked/hybrid: at t ∈ {0.1,...,0.9}, the mean CE over
    corrupted positions and the ELBO term sum(CE)/(t·L) per token; nelbo = the mean of the
    latter over the grid (a Riemann estimate of the per-token NELBO, nats)."""
    dc = cfg["diffusion"]
    tok = data.val_windows(VAL_WINDOWS, L)
    B = tok.shape[0]
    dev = tok.device
    gen = torch.Generator(device=dev).manual_seed(0x5EED)
    rows = []
    with autocast:
        if samnet.kind(cfg) == "gaussian":
            for tv in GAUSS_EVAL_T:
                t = torch.full((B,), (tv * dc["timesteps"] + 999) // 1000, device=dev, dtype=torch.long)
                eps = torch.randn(B, L, samnet.embed_dim(cfg), device=dev, generator=gen)
                sc = None
                if dc.get("self_condition"):
                    sc = samnet.gaussian_loss(cfg, P, tok, t, eps, None)[3].float()
                _, mse, ce, _, _ = samnet.gaussian_loss(cfg, P, tok, t, eps, sc)
                rows.append({"t": int(t[0]), "mse": float(mse), "ce": float(ce)})
            return {"val": rows, "val_ce_mean": sum(r["ce"] for r in rows) / len(rows),
                    "val_mse_mean": sum(r["mse"] for r in rows) / len(rows)}
        for tv in DISCRETE_EVAL_T:
            t = torch.full((B,), tv, device=dev)
            corrupt = torch.rand(B, L, device=dev, generator=gen) < tv
            noise = torch.randn(B, L, samnet.embed_dim(cfg), device=dev, generator=gen)
            sc = None
            if dc.get("self_condition"):
                sc = soft_embedding(cfg, P, samnet.discrete_loss(cfg, P, tok, t, corrupt, noise, None)[2])
            logits = samnet.discrete_loss(cfg, P, tok, t, corrupt, noise, sc)[2]
            ce_rows = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tok.reshape(-1),
                                      reduction="none").view(tok.shape)
            w = corrupt.float()
            rows.append({"t": tv, "ce": float((ce_rows * w).sum() / w.sum().clamp_min(1)),
                         "elbo_term": float((ce_rows * w).sum() / (tv * tok.numel()))})
    return {"val": rows, "val_ce_mean": sum(r["ce"] for r in rows) / len(rows),
            "val_nelbo": sum(r["elbo_term"] for r in rows) / len(rows)}


# ----------------------------------------------------------------------------- sampling

class Draws:
    """Per-seed generators: row r of every draw comes from seed r's own stream, so a
    seed's sample does not depend on which other seeds are in the batch."""

    def __init__(self, seeds, dev):
        self.gens = [torch.Generator(device=dev).manual_seed(int(s)) for s in seeds]
        self.dev = dev

    def rand(self, *shape, dtype=torch.float64):
        return torch.stack([torch.rand(shape, generator=g, device=self.dev, dtype=dtype) for g in self.gens])

    def randn(self, *shape):
        return torch.stack([torch.randn(shape, generator=g, device=self.dev) for g in self.gens])


def tempered_probs(logits, temperature, top_p):
    """float64 probabilities of softmax(logits / T), optionally nucleus-truncated."""
    lg = torch.nan_to_num(logits.double(), nan=0.0, posinf=1e30, neginf=-1e30)
    p = torch.softmax(lg / temperature, -1)
    if top_p < 1.0:
        sp, si = torch.sort(p, -1, descending=True)
        before = sp.cumsum(-1) - sp
        sp = torch.where(before < top_p, sp, torch.zeros_like(sp))
        p = torch.zeros_like(p).scatter(-1, si, sp)
        p = p / p.sum(-1, keepdim=True)
    return p


def draw(logits, temperature, top_p, u):
    """Tokens from softmax(logits/T) by inverse CDF with float64 uniforms u (same shape
    as logits[..., 0]); T = 0: argmax. Returns (tokens, probability of the drawn token)."""
    V = logits.shape[-1]
    if temperature <= 0:
        p = torch.softmax(torch.nan_to_num(logits.double()), -1)
        tok = p.argmax(-1)
    else:
        p = tempered_probs(logits, temperature, top_p)
        cdf = p.cumsum(-1)
        tok = torch.searchsorted(cdf, (u * cdf[..., -1]).unsqueeze(-1).contiguous(), right=True).squeeze(-1)
    tok = tok.clamp(0, V - 1)  # never an out-of-range index (an MPS client's assert faults the server)
    return tok, p.gather(-1, tok.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def sample(cfg, P, so, seeds, autocast):
    """Token ids (len(seeds), len) for sampler options `so`, one kind-specific loop."""
    k = samnet.kind(cfg)
    dc = cfg["diffusion"]
    dev = P["embedding.weight"].device
    n, L, N = len(seeds), int(so["len"]), int(so["steps"])
    T, top_p = float(so["temperature"]), float(so.get("top_p", 1.0))
    V = cfg["model"]["vocab_size"]
    e = samnet.embed_dim(cfg)
    rng = Draws(seeds, dev)
    e_hat = samnet.rmsnorm(P["embedding.weight"].float(), cfg["model"]["norm_eps"])
    sc_on = dc.get("self_condition", False)
    sc = torch.zeros(n, L, e, device=dev) if sc_on else None

    if k == "gaussian":
        Tn = dc["timesteps"]
        steps = max(1, min(N, Tn))
        ts = [Tn] if steps == 1 else [round(Tn - i / (steps - 1) * (Tn - 1)) for i in range(steps)]
        s = dc["signal_scale"]
        x = rng.randn(L, e)
        tok = torch.zeros(n, L, dtype=torch.long, device=dev)
        for i, t in enumerate(ts):
            nxt = ts[i + 1] if i + 1 < len(ts) else 0
            tt = torch.full((n,), t, device=dev, dtype=torch.long)
            with autocast:
                z0_pred, logits = samnet.gaussian_logits(cfg, P, x, tt, sc)
            z0_pred, logits = z0_pred.float(), logits.float()
            tok, _ = draw(logits, T, top_p, rng.rand(L))
            if so["x0"] == "clamp":
                est = s * e_hat[tok]
            elif so["x0"] == "softmax":
                est = s * (torch.softmax(logits / (T if T > 0 else 1.0), -1) @ e_hat)
            else:
                est = z0_pred
            ab = samnet.alpha_bar(dc, torch.tensor([t])).item()
            ab_n = 1.0 if nxt == 0 else samnet.alpha_bar(dc, torch.tensor([nxt])).item()
            eps_hat = (x - math.sqrt(ab) * est) / math.sqrt(1 - ab)
            x = math.sqrt(ab_n) * est + math.sqrt(1 - ab_n) * eps_hat
            x = torch.nan_to_num(x)
            if sc_on:
                sc = est
        return tok

    table = samnet.input_table(cfg, P).float()
    tok = torch.full((n, L), V if k == "masked" else 0, dtype=torch.long, device=dev)
    hidden = torch.ones(n, L, dtype=torch.bool, device=dev)  # masked / still corrupted
    z = None
    if k == "hybrid":
        z = samnet.hybrid_sigma(dc, 1.0, e).item() * rng.randn(L, e)
    for i in range(N):
        t, s_ = 1 - i / N, 1 - (i + 1) / N
        tt = torch.full((n,), t, device=dev)
        if k == "masked":
            x_in = table[tok]
        else:
            sig = torch.full((n,), samnet.hybrid_sigma(dc, t, e).item(), device=dev)
            x_in = torch.where(hidden[..., None], samnet.hybrid_input(dc, z, sig), table[tok.clamp(0, V - 1)])
        with autocast:
            logits = samnet.discrete_logits(cfg, P, x_in, tt, sc, hidden).float()
        new, conf = draw(logits, T, top_p, rng.rand(L))
        u_reveal = rng.rand(L)
        if so.get("order", "random") == "confident":
            target = round(L * s_)
            k_rev = (hidden.sum(-1) - target).clamp_min(0)
            score = torch.where(hidden, conf, torch.full_like(conf, -1.0))
            rank = score.argsort(-1, descending=True).argsort(-1)
            reveal = hidden & (rank < k_rev[:, None])
        else:
            reveal = hidden & (u_reveal < (t - s_) / t)
        if k == "hybrid":
            # CANDI-style continuous update of the positions that stay corrupted
            sig_t = samnet.hybrid_sigma(dc, t, e).item()
            sig_s = samnet.hybrid_sigma(dc, s_, e).item()
            if so.get("x0", "soft") == "hard":
                x0 = e_hat[new]
            else:
                x0 = torch.softmax(logits / (T if T > 0 else 1.0), -1) @ e_hat
            if so.get("update", "ddim") == "ddim":
                z = x0 + sig_s * (z - x0) / max(sig_t, 1e-8)
            else:
                z = x0 + sig_s * rng.randn(L, e)
            z = torch.nan_to_num(z)
        tok = torch.where(reveal, new, tok)
        hidden = hidden & ~reveal
        if sc_on:
            sc = soft_embedding(cfg, P, logits)
    return tok.clamp(0, V - 1)


def evaluate_sampler(cfg, P, data, so, autocast):
    t0 = time.time()
    ids = sample(cfg, P, so, list(range(QUALITY_SEEDS)), autocast)
    samples = [data.decode(r) for r in ids.tolist()]
    q = quality(samples, data.train_text, data.vocab)
    return {"sampler": dict(so), "spec_steps": int(so["steps"]) == SPEC_STEPS and int(so["len"]) == SAMPLE_LEN,
            **q, "sample_s": round(time.time() - t0, 2), "samples": samples}


def grid(cfg, name):
    base = sample_defaults(cfg)
    k = samnet.kind(cfg)
    if name == "none":
        return []
    if k == "gaussian":
        g = [{"x0": "clamp", "temperature": 0.0}, {"x0": "softmax", "temperature": 0.0}, {"x0": "pred", "temperature": 0.0},
             {"x0": "clamp", "temperature": 0.7}]
        if name == "full":
            g += [{"x0": "softmax", "temperature": 0.7}, {"x0": "clamp", "temperature": 0.0, "steps": 128},
                  {"x0": "softmax", "temperature": 0.0, "steps": 128}, {"x0": "clamp", "temperature": 0.0, "steps": 256},
                  {"x0": "clamp", "temperature": 0.5}, {"x0": "clamp", "temperature": 1.0}]
    else:
        g = [{"temperature": T} for T in (0.5, 0.6, 0.7, 0.8, 1.0)]
        if name == "full":
            g += [{"temperature": T} for T in (0.55, 0.65, 0.75)]
            g += [{"temperature": 0.6, "steps": 128}, {"temperature": 0.7, "steps": 128}, {"temperature": 0.8, "steps": 256},
                  {"temperature": 0.6, "steps": 32}, {"temperature": 0.8, "top_p": 0.9}, {"temperature": 1.0, "top_p": 0.9},
                  {"temperature": 1.0, "top_p": 0.8}, {"temperature": 0.6, "order": "confident"},
                  {"temperature": 1.0, "order": "confident"}]
            if k == "hybrid":
                g += [{"temperature": 0.7, "update": "renoise"}, {"temperature": 0.7, "x0": "hard"}]
    return [{**base, "order": "random", **x} for x in g]


# ----------------------------------------------------------------------------- output

class Report:
    def __init__(self, path, base):
        self.path, self.doc = path, base

    def flush(self):
        if not self.path:
            return
        self.doc["wall_s"] = round(time.time() - START, 1)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.doc, f, indent=1)
        os.replace(tmp, self.path)


def log(obj):
    print(json.dumps(obj), file=sys.stderr, flush=True)


def summary_line(tag, r):
    return (f"{tag} vw {r['valid_word_rate']:.3f} vl {r['valid_long_word_rate']:.3f} div {r['diversity']:.3f} "
            f"nov {r['novelty']:.3f}{' PASS' if r['passes_bar'] else ''}")


def run_rows(cfg, P, data, settings, report, deadline, autocast):
    rows = report.doc.setdefault("rows", [])
    for so in settings:
        if time.time() > deadline:
            report.doc["rows_skipped"] = report.doc.get("rows_skipped", 0) + 1
            continue
        r = evaluate_sampler(cfg, P, data, so, autocast)
        rows.append(r)
        log({"row": {k: v for k, v in r.items() if k != "samples"}})
        report.flush()


# ----------------------------------------------------------------------------- main

def selftest(args):
    """The metric code against assets/phase1/eval-h100.json (figures from `samnet eval`)."""
    path = os.path.join(ROOT, "assets", "phase1", "eval-h100.json")
    with open(path) as f:
        rec = json.load(f)
    data = Data(args.data)
    q = quality(rec["samples"], data.train_text, data.vocab)
    checked = []
    for k in ("valid_word_rate", "valid_long_word_rate", "diversity", "novelty"):
        if k in rec:
            assert abs(q[k] - rec[k]) < 1e-12, f"{k}: python {q[k]} vs recorded {rec[k]}"
            checked.append(f"{k} {q[k]:.6f}")
    assert checked, "eval-h100.json holds no figures"
    # docs/quality.md's table gives valid-long 0.475 for these samples (eta 0; 3 digits)
    assert round(q["valid_long_word_rate"], 3) == 0.475, q["valid_long_word_rate"]
    checked.append(f"valid_long_word_rate {q['valid_long_word_rate']:.6f} (docs/quality.md: 0.475)")
    # the Rust unit tests of core/src/metrics.rs
    voc = vocabulary("To be, or not to be: that is the question.\nWhether 'tis nobler")
    s = ["to be or nto be, qqq", "The question: tis 42 nobler!"]
    assert abs(valid_rate(s, voc) - 0.7) < 1e-12 and valid_rate(["123 ..."], voc) == 0.0
    assert abs(valid_rate(s, voc, 3) - 0.5) < 1e-12
    assert valid_rate(["o e t o be"], vocabulary("o e t be"), 3) == 0.0
    assert diversity(["abcdefghij"]) == 1.0 and abs(diversity(["aaaaaaaaaa"]) - 1 / 3) < 1e-12
    assert abs(diversity(["abcdefghijklmnop"] * 2) - 0.5) < 1e-12
    tr = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
    assert novelty([tr[:48]], tr) == 0.0 and novelty(["zyxwvutsrqponmlkjihgfedcba9876543210ZYXWVUTSRQPO"], tr) == 1.0
    assert len(data.chars) == 65 or not args.data.endswith("tinyshakespeare.txt"), len(data.chars)
    print("selftest ok: " + ", ".join(checked) + f" (vocab {len(data.chars)} chars, train {len(data.train_text)} chars)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(ROOT, "assets", "configs", "phase1.json"))
    ap.add_argument("--data", default=os.environ.get("DATA", "/work/shared/data/tinyshakespeare.txt"))
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--minutes", type=float, help="whole-process time budget (training + evaluation)")
    ap.add_argument("--steps", type=int, help="step budget (the LR schedule runs over it)")
    ap.add_argument("--reserve", type=float, help="seconds kept for evaluation at the end of a --minutes budget")
    ap.add_argument("--out")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--save")
    ap.add_argument("--resample", metavar="W.pt", help="load weights, skip training, run the sampler grid")
    ap.add_argument("--grid", default=None, help="sampler grid after training: none|quick|full (default quick; resample: full)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--selftest", action="store_true")
    args = ap.parse_args()
    if args.selftest:
        return selftest(args)

    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16)
    budget = args.minutes * 60 if args.minutes else None
    deadline = START + budget if budget else float("inf")

    if args.resample:
        ck = torch.load(args.resample, map_location=dev, weights_only=False)
        cfg = apply_overrides(ck["config"], args.set)
        P = {k: v.to(dev) for k, v in ck["params"].items()}
        data = Data(args.data).to(dev)
        report = Report(args.out, {"mode": "resample", "tag": args.tag or ck.get("tag", ""), "weights": args.resample,
                                   "kind": samnet.kind(cfg), "config": cfg, "overrides": ck.get("overrides", []) + args.set,
                                   "trained_steps": ck.get("steps"), "status": "sampling"})
        report.flush()
        run_rows(cfg, P, data, grid(cfg, args.grid or "full"), report, deadline - 5, autocast)
        report.doc["status"] = "done"
        report.flush()
        for r in report.doc["rows"]:
            log({"summary": summary_line(f"{report.doc['tag']} {json.dumps({k: r['sampler'][k] for k in ('temperature', 'steps', 'top_p', 'order', 'x0', 'update')})}", r)})
        return

    with open(args.config) as f:
        cfg = apply_overrides(json.load(f), args.set)
    k = samnet.kind(cfg)
    data = Data(args.data).to(dev)
    if cfg["model"]["vocab_size"] != len(data.chars):
        raise SystemExit(f"config vocab_size {cfg['model']['vocab_size']} but the data has {len(data.chars)} characters")
    tc = cfg["train"]
    B, L = tc["batch_size"], tc["seq_len"]
    seed = tc.get("seed", 0)
    torch.manual_seed(seed)
    P = init_params(cfg, dev, seed)
    decay = [p for n, p in P.items() if n.endswith("weight") and "embedding" not in n and n != "input_flag.weight"]
    no_decay = [p for n, p in P.items() if not any(p is q for q in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=tc["lr"], betas=(tc["beta1"], tc["beta2"]), eps=tc["adam_eps"])
    gen = torch.Generator(device=dev).manual_seed(seed + 1)
    loss_fn = torch.compile(train_loss) if args.compile else train_loss
    so = sample_defaults(cfg)
    settings = grid(cfg, args.grid or "quick")
    reserve = args.reserve if args.reserve is not None else (20 + 5 * len(settings) if dev.type == "cuda" else 10 + 4 * len(settings))
    train_end = deadline - reserve if budget else float("inf")
    if not args.steps and not budget:
        args.steps = tc["steps"]
    report = Report(args.out, {"mode": "train", "tag": args.tag, "kind": k, "status": "training", "config": cfg,
                               "overrides": args.set, "device": str(dev), "bf16": args.bf16, "compile": args.compile,
                               "minutes": args.minutes, "step_budget": args.steps,
                               "schedule": "step-based" if args.steps else "time-based", "steps": 0, "log": []})
    if torch.cuda.is_available() and dev.type == "cuda":
        report.doc["gpu"] = torch.cuda.get_device_name()
    report.flush()
    log_every = tc.get("log_every", 25)
    step, t_train0, tok_count = 0, None, 0
    acc, acc_n, last_log_t = 0.0, 0, time.time()
    stats_acc = {}
    status = "done"
    while True:
        now = time.time()
        if args.steps and step >= args.steps:
            break
        if now >= train_end:
            break
        if t_train0 is None:
            p = 0.0
        elif args.steps:
            p = step / args.steps
        else:
            p = (now - t_train0) / max(1e-6, train_end - t_train0)
        lr = lr_at(tc, min(1.0, p))
        for g in opt.param_groups:
            g["lr"] = lr
        tokens = data.batch(B, L, gen)
        with autocast:
            loss, stats = loss_fn(cfg, P, tokens, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_([p_ for p_ in P.values()], tc["grad_clip"]) if tc.get("grad_clip") else None
        opt.step()
        step += 1
        tok_count += B * L
        acc = acc + loss.detach().float()
        acc_n += 1
        for sk, sv in stats.items():
            stats_acc[sk] = stats_acc.get(sk, 0.0) + sv.detach().float()
        if t_train0 is None:
            t_train0 = time.time()  # the schedule's clock starts after the first (warm-up/compile) step
            tok_count = 0
        if step % log_every == 0 or step == 1:
            lv = (acc / acc_n).item()
            tnow = time.time()
            row = {"step": step, "loss": lv, "lr": lr, "grad_norm": None if gnorm is None else float(gnorm),
                   "tokens_per_s": round(tok_count / max(1e-6, tnow - (t_train0 or tnow)), 1) if step > 1 else None,
                   "wall_s": round(tnow - START, 1), **{sk: (sv / acc_n).item() for sk, sv in stats_acc.items()}}
            log({"tag": args.tag, **row})
            report.doc["log"].append(row)
            report.doc["steps"], report.doc["train_loss"] = step, lv
            acc, acc_n, stats_acc = 0.0, 0, {}
            if not math.isfinite(lv):
                status = "nan"
                break
            report.flush()
    report.doc["steps"] = step
    report.doc["train_s"] = round(time.time() - (t_train0 or time.time()), 1)
    if acc_n:
        lv = (acc / acc_n).item()
        report.doc["train_loss"] = lv
        if not math.isfinite(lv):
            status = "nan"
    if status == "nan" or any(not torch.isfinite(p_).all() for p_ in P.values()):
        report.doc["status"] = "nan"
        report.flush()
        log({"tag": args.tag, "error": "non-finite loss or weights: no sampling"})
        return
    P = {n: p_.detach() for n, p_ in P.items()}
    if args.save:
        torch.save({"config": cfg, "params": {n: p_.cpu() for n, p_ in P.items()}, "overrides": args.set,
                    "steps": step, "tag": args.tag}, args.save)
        report.doc["saved"] = args.save
    report.doc["status"] = "evaluating"
    report.doc.update(validation(cfg, P, data, L, autocast))
    report.flush()
    r = evaluate_sampler(cfg, P, data, so, autocast)
    report.doc["metrics"] = {kk: r[kk] for kk in ("valid_word_rate", "valid_long_word_rate", "diversity", "novelty", "passes_bar")}
    report.doc["sampler"], report.doc["samples"] = r["sampler"], r["samples"]
    report.flush()
    log({"tag": args.tag, "summary": summary_line(f"{args.tag} steps {step} own-sampler", r),
         "val_ce_mean": report.doc.get("val_ce_mean")})
    run_rows(cfg, P, data, [s for s in settings if s != so], report, deadline - 3, autocast)
    report.doc["status"] = "done"
    report.flush()


if __name__ == "__main__":
    main()
