use samnet_core::ops::attention::AttnShape;
use samnet_core::ops::attention_softmax::{SoftmaxAttention, Span};
use samnet_core::reference::attention::HeadLayout;
use samnet_core::reference::{attention_softmax as reference, attention_topk};
use samnet_tests::*;

fn layout(s: AttnShape) -> HeadLayout {
    HeadLayout {
        seq: s.seq,
        d: s.d_model(),
        head_dim: s.head_dim,
    }
}

/// Whether element `i` of a row-major buffer with rows of `width` lies in the
/// columns of a head the kernel does not handle (in any q/k/v block when
/// `width` is 3d).
fn unhandled(i: usize, width: usize, s: AttnShape) -> bool {
    let head = (i % width) % s.d_model() / s.head_dim;
    !(s.head_start..s.head_start + s.head_count).contains(&head)
}

/// Asserts that the unhandled heads' columns still hold `fill`, then zeroes
/// them (the reference leaves unhandled heads at 0).
fn untouched_others(label: &str, got: Vec<f64>, width: usize, s: AttnShape, fill: f64) -> Vec<f64> {
    assert!(
        (0..got.len())
            .filter(|&i| unhandled(i, width, s))
            .all(|i| got[i] == fill),
        "{label}: an unhandled head written"
    );
    zero_others(got, width, s)
}

fn zero_others(v: Vec<f64>, width: usize, s: AttnShape) -> Vec<f64> {
    v.into_iter()
        .enumerate()
        .map(|(i, x)| if unhandled(i, width, s) { 0.0 } else { x })
        .collect()
}

fn half_window(span: Span) -> Option<usize> {
    match span {
        Span::Full => None,
        Span::HalfWindow(w) => Some(w),
    }
}

fn case(head_dim: usize, span: Span, q_scale: f64, seed: u64) {
    let s = AttnShape {
        batch: 2,
        seq: 37,
        n_heads: 3,
        head_dim,
        head_start: 1,
        head_count: 2,
    };
    let (rows, d) = (s.batch * s.seq, s.d_model());
    let label = format!("softmax {span:?} dh={head_dim} q×{q_scale}");
    let mut rng = Rng::new(seed);
    let mut qkv = rng.normals(rows * 3 * d);
    for (i, x) in qkv.iter_mut().enumerate() {
        if (i % (3 * d)) < d {
            *x *= q_scale;
        }
    }
    let dout = rng.normals(rows * d);
    let heads = s.head_start..s.head_start + s.head_count;
    let fwd =
        |v: &[f64]| reference::forward(v, s.batch, layout(s), heads.clone(), half_window(span));

    let attn = SoftmaxAttention::new(gpu(), s, span, "softmax").unwrap();
    let (gqkv, gout) = (
        upload("qkv", &[rows, 3 * d], &qkv),
        upload("out", &[rows, d], &vec![9.0; rows * d]),
    );
    let forward = vec![attn.forward(gpu(), &gqkv, &gout).unwrap()];
    run(forward.clone());
    let got = untouched_others(&label, read(&gout), d, s, 9.0);
    check(&format!("{label} fwd"), &got, &fwd(&qkv), TOL_F32);

    let want = reference::backward(
        &qkv,
        &dout,
        s.batch,
        layout(s),
        heads.clone(),
        half_window(span),
    );
    let (gdout, gdqkv) = (
        upload("dout", &[rows, d], &dout),
        upload("dqkv", &[rows, 3 * d], &vec![5.0; rows * 3 * d]),
    );
    run(attn.backward(gpu(), &gqkv, &gout, &gdout, &gdqkv).unwrap());
    let got = untouched_others(&format!("{label} dqkv"), read(&gdqkv), 3 * d, s, 5.0);
    let mut gpu_fwd = gpu_forward(&gqkv, &qkv, &forward, &gout);
    check_backward(
        &label,
        &qkv,
        &dout,
        &want,
        &got,
        fwd,
        |v| zero_others(gpu_fwd(v), d, s),
        &mut rng,
    );
}

/// Long sequences, up to the 4096 the kernel promises: the forward and
/// backward against the reference (checks 1 and 3). On lavapipe this is also
/// what catches loops that run into llvmpipe's 65,535-iteration limit (see the
/// shader's header): the kernel then writes wrong numbers without an error.
/// The finite-difference checks stay with the short cases, where the code
/// paths are the same; here each would cost twenty O(L²) forwards.
fn long_case(s: AttnShape, span: Span, seed: u64) {
    let (rows, d) = (s.batch * s.seq, s.d_model());
    let label = format!("softmax {span:?} L={} dh={}", s.seq, s.head_dim);
    let mut rng = Rng::new(seed);
    let qkv = rng.normals(rows * 3 * d);
    let dout = rng.normals(rows * d);
    let heads = s.head_start..s.head_start + s.head_count;

    let attn = SoftmaxAttention::new(gpu(), s, span, "softmax").unwrap();
    let (gqkv, gout, gdout, gdqkv) = (
        upload("qkv", &[rows, 3 * d], &qkv),
        upload("out", &[rows, d], &vec![9.0; rows * d]),
        upload("dout", &[rows, d], &dout),
        upload("dqkv", &[rows, 3 * d], &vec![5.0; rows * 3 * d]),
    );
    let mut dispatches = vec![attn.forward(gpu(), &gqkv, &gout).unwrap()];
    dispatches.extend(attn.backward(gpu(), &gqkv, &gout, &gdout, &gdqkv).unwrap());
    run(dispatches);

    let got = untouched_others(&label, read(&gout), d, s, 9.0);
    let want = reference::forward(&qkv, s.batch, layout(s), heads.clone(), half_window(span));
    check(&format!("{label} fwd"), &got, &want, TOL_F32);
    let got = untouched_others(&format!("{label} dqkv"), read(&gdqkv), 3 * d, s, 5.0);
    let want = reference::backward(&qkv, &dout, s.batch, layout(s), heads, half_window(span));
    check(&format!("{label} gpu vs ref"), &got, &want, TOL_F32);
}

#[test]
fn windows_of_zero_and_four() {
    case(8, Span::HalfWindow(0), 1.0, 150);
    case(12, Span::HalfWindow(4), 1.0, 151);
}

#[test]
fn full_attention_and_window_wider_than_the_sequence() {
    case(12, Span::Full, 1.0, 152);
    case(8, Span::HalfWindow(100), 1.0, 153);
}

#[test]
fn large_scores_stay_stable() {
    case(8, Span::Full, 30.0, 154);
}

#[test]
fn sequences_of_4096_and_head_dim_64() {
    let shape = |batch, seq, head_dim| AttnShape {
        batch,
        seq,
        n_heads: 3,
        head_dim,
        head_start: 1,
        head_count: 1,
    };
    long_case(shape(1, 4096, 64), Span::Full, 156);
    long_case(shape(2, 4093, 40), Span::HalfWindow(128), 157);
}

#[test]
fn full_attention_equals_topk_with_k_at_least_the_sequence() {
    let s = AttnShape {
        batch: 1,
        seq: 19,
        n_heads: 2,
        head_dim: 8,
        head_start: 0,
        head_count: 2,
    };
    let mut rng = Rng::new(155);
    let qkv = rng.normals(s.seq * 3 * s.d_model());
    let full = reference::forward(&qkv, 1, layout(s), 0..2, None);
    let topk = attention_topk::forward(&qkv, 1, layout(s), 0..2, 64).0;
    check("full = topk(k ≥ L) reference", &topk, &full, 1e-12);
}
