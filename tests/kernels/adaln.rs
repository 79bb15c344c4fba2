use samnet_core::config::NormKind;
use samnet_core::ops::adaln::{Gate, ModShape, ModulatedNorm, ShiftScale};
use samnet_core::reference::adaln as reference;
use samnet_core::reference::norm;
use samnet_tests::*;

/// B = 3, L = 13, d = 24: shift and scale in the 4th and 5th of six d-wide
/// blocks of a (B, 6d) modulation tensor, the gate in the 6th.
const SMALL: ModShape = ModShape {
    batch: 3,
    seq: 13,
    d: 24,
    stride: 6 * 24,
};
/// B = 2, L = 37, d = 40: scale before shift, the gate in the 3rd block.
const WIDE: ModShape = ModShape {
    batch: 2,
    seq: 37,
    d: 40,
    stride: 6 * 40,
};

/// B = 2, L = 5, d = 150: rows wider than a row kernel's 64 threads, fewer
/// positions than a column sum's 8 lanes, the final layer's (B, 2d) shape.
const WIDER: ModShape = ModShape {
    batch: 2,
    seq: 5,
    d: 150,
    stride: 2 * 150,
};

/// Asserts that `dmodulation` still holds `sentinel` outside the column
/// blocks at `written`, and returns it with those columns zeroed (the
/// reference gradient is zero there).
fn written_blocks(dm: &[f64], s: ModShape, written: &[usize], sentinel: f64) -> Vec<f64> {
    dm.iter()
        .enumerate()
        .map(|(i, &v)| {
            let col = i % s.stride;
            if written.iter().any(|&o| (o..o + s.d).contains(&col)) {
                v
            } else {
                assert_eq!(v, sentinel, "column {col} was touched");
                0.0
            }
        })
        .collect()
}

fn normalise(kind: NormKind, h: &[f64], d: usize) -> Vec<f64> {
    match kind {
        NormKind::Rms => norm::rmsnorm(h, d, EPS as f64).0,
        NormKind::Layer => norm::layernorm(h, d, EPS as f64).0,
    }
}

fn normalise_backward(kind: NormKind, h: &[f64], dn: &[f64], d: usize) -> Vec<f64> {
    match kind {
        NormKind::Rms => norm::rmsnorm_backward(h, dn, d, EPS as f64),
        NormKind::Layer => norm::layernorm_backward(h, dn, d, EPS as f64),
    }
}

const EPS: f32 = 1e-6;

/// (d h, d modulation) of `op`: the f64 modulate and norm backwards composed.
fn reference_backward(
    op: &ModulatedNorm,
    m: &[f64],
    h: &[f64],
    dout: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let (s, at) = (op.shape, op.at);
    let normalised = normalise(op.kind, h, s.d);
    let (dn, dm) = reference::modulate_backward(
        m,
        &normalised,
        dout,
        s.seq,
        s.d,
        s.stride,
        at.shift,
        at.scale,
    );
    (normalise_backward(op.kind, h, &dn, s.d), dm)
}

/// The fused kernel against the f64 norm and modulate composed: its
/// output, saved (μ, rstd), d h (written, then added to what dh held) and
/// d modulation, both backwards also against central differences.
fn modulated_norm_case(s: ModShape, at: ShiftScale, kind: NormKind, seed: u64) {
    let label = format!("{kind:?} modulated norm B{} L{} d{}", s.batch, s.seq, s.d);
    let op = ModulatedNorm {
        shape: s,
        kind,
        eps: EPS,
        at,
    };
    let (rows, d) = (s.batch * s.seq, s.d);
    let n = rows * d;
    let mut rng = Rng::new(seed);
    let h: Vec<f64> = rng.normals(n).iter().map(|v| 0.5 + 2.0 * v).collect();
    let (m, dout, prior) = (
        rng.normals(s.batch * s.stride),
        rng.normals(n),
        rng.normals(n),
    );
    let (gm, gh, gout, gstats) = (
        upload("mod", &[s.batch, s.stride], &m),
        upload("h", &[rows, d], &h),
        zeros("out", &[rows, d]),
        zeros("stats", &[rows, 2]),
    );
    let forward = vec![op.forward(gpu(), &gm, &gh, &gout, &gstats).unwrap()];
    run(forward.clone());
    let modulate =
        |m: &[f64], n: &[f64]| reference::modulate(m, n, s.seq, d, s.stride, at.shift, at.scale);
    let fwd_h = |v: &[f64]| modulate(&m, &normalise(kind, v, d));
    let fwd_m = |v: &[f64]| modulate(v, &normalise(kind, &h, d));
    check(&format!("{label} fwd"), &read(&gout), &fwd_h(&h), TOL_F32);
    let want_stats: Vec<f64> = match kind {
        NormKind::Rms => norm::rmsnorm(&h, d, EPS as f64)
            .1
            .iter()
            .flat_map(|&r| [0.0, r])
            .collect(),
        NormKind::Layer => {
            let (_, mean, rstd) = norm::layernorm(&h, d, EPS as f64);
            mean.iter()
                .zip(&rstd)
                .flat_map(|(&mu, &r)| [mu, r])
                .collect()
        }
    };
    check(
        &format!("{label} stats"),
        &read(&gstats),
        &want_stats,
        TOL_F32,
    );

    let (want_dh, want_dm) = reference_backward(&op, &m, &h, &dout);
    let (gdout, gdh) = (
        upload("dout", &[rows, d], &dout),
        upload("dh", &[rows, d], &prior),
    );
    let gdm = upload("dmod", &[s.batch, s.stride], &vec![7.0; s.batch * s.stride]);
    let backward = |accumulate| {
        op.backward(gpu(), (&gm, &gdm), (&gh, &gstats), &gdout, &gdh, accumulate)
            .unwrap()
    };
    run(backward(true));
    let accumulated: Vec<f64> = want_dh.iter().zip(&prior).map(|(a, b)| a + b).collect();
    check(
        &format!("{label} dh accumulated"),
        &read(&gdh),
        &accumulated,
        TOL_F32,
    );
    run(backward(false));
    let got_dm = written_blocks(&read(&gdm), s, &[at.shift, at.scale], 7.0);
    check_backward(
        &format!("{label} dh"),
        &h,
        &dout,
        &want_dh,
        &read(&gdh),
        fwd_h,
        gpu_forward(&gh, &h, &forward, &gout),
        &mut rng,
    );
    check_backward(
        &format!("{label} dmod"),
        &m,
        &dout,
        &want_dm,
        &got_dm,
        fwd_m,
        gpu_forward(&gm, &m, &forward, &gout),
        &mut rng,
    );
}

#[test]
fn modulated_norm_forward_and_backward() {
    let d = SMALL.d;
    let at = ShiftScale {
        shift: 3 * d,
        scale: 4 * d,
    };
    modulated_norm_case(SMALL, at, NormKind::Rms, 70);
    modulated_norm_case(SMALL, at, NormKind::Layer, 74);
    let d = WIDE.d;
    let at = ShiftScale {
        shift: 4 * d,
        scale: d,
    };
    modulated_norm_case(WIDE, at, NormKind::Rms, 72);
    modulated_norm_case(WIDE, at, NormKind::Layer, 75);
    let at = ShiftScale {
        shift: 0,
        scale: WIDER.d,
    };
    modulated_norm_case(WIDER, at, NormKind::Rms, 77);
    modulated_norm_case(WIDER, at, NormKind::Layer, 78);
}

/// h_out = h_in + gate·(y + bias), with and without the bias, against the
/// f64 reference; both backwards also against central differences.
fn gate_case(s: ModShape, offset: usize, with_bias: bool, seed: u64) {
    let label = format!("gate B{} L{} d{} bias {with_bias}", s.batch, s.seq, s.d);
    let gate = Gate { shape: s, offset };
    let n = s.batch * s.seq * s.d;
    let mut rng = Rng::new(seed);
    let (m, y, h, dh) = (
        rng.normals(s.batch * s.stride),
        rng.normals(n),
        rng.normals(n),
        rng.normals(n),
    );
    let bias = if with_bias {
        rng.normals(s.d)
    } else {
        vec![0.0; s.d]
    };
    let (gm, gy, gh, gout, gbias) = (
        upload("mod", &[s.batch, s.stride], &m),
        upload("y", &[n], &y),
        upload("h", &[n], &h),
        zeros("h_out", &[n]),
        upload("bias", &[s.d], &bias),
    );
    let gbias = with_bias.then_some(&gbias);
    let forward = vec![
        gate.forward(gpu(), &gm, (&gy, gbias), (&gh, &gout))
            .unwrap(),
    ];
    run(forward.clone());
    let plus_bias = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .enumerate()
            .map(|(i, x)| x + bias[i % s.d])
            .collect()
    };
    let fwd_y = |v: &[f64]| reference::gate(&m, &plus_bias(v), &h, s.seq, s.d, s.stride, offset);
    let fwd_m = |v: &[f64]| reference::gate(v, &plus_bias(&y), &h, s.seq, s.d, s.stride, offset);
    check(&format!("{label} fwd"), &read(&gout), &fwd_y(&y), TOL_F32);
    assert_eq!(
        read(&gh),
        h.iter().map(|&v| v as f32 as f64).collect::<Vec<_>>(),
        "{label}: h_in was written"
    );

    let (want_dy, want_dm) =
        reference::gate_backward(&m, &plus_bias(&y), &dh, s.seq, s.d, s.stride, offset);
    let (gdh, gdy, gdm) = (
        upload("dh", &[n], &dh),
        zeros("dy", &[n]),
        upload("dmod", &[s.batch, s.stride], &vec![7.0; s.batch * s.stride]),
    );
    run(vec![
        gate.backward(gpu(), (&gm, &gdm), (&gy, gbias), &gdh, &gdy)
            .unwrap(),
    ]);
    let got_dm = written_blocks(&read(&gdm), s, &[offset], 7.0);
    check_backward(
        &format!("{label} dy"),
        &y,
        &dh,
        &want_dy,
        &read(&gdy),
        fwd_y,
        gpu_forward(&gy, &y, &forward, &gout),
        &mut rng,
    );
    check_backward(
        &format!("{label} dmod"),
        &m,
        &dh,
        &want_dm,
        &got_dm,
        fwd_m,
        gpu_forward(&gm, &m, &forward, &gout),
        &mut rng,
    );
}

#[test]
fn gate_forward_and_backward() {
    gate_case(SMALL, 5 * SMALL.d, true, 71);
    gate_case(WIDE, 2 * WIDE.d, false, 73);
    gate_case(WIDE, 2 * WIDE.d, true, 76);
    gate_case(WIDER, WIDER.d, true, 79);
}

#[test]
fn offsets_outside_the_stride_are_rejected() {
    let s = ModShape {
        batch: 1,
        seq: 2,
        d: 4,
        stride: 8,
    };
    let op = ModulatedNorm {
        shape: s,
        kind: NormKind::Rms,
        eps: EPS,
        at: ShiftScale { shift: 0, scale: 6 },
    };
    let (m, h, out, stats) = (
        zeros("mod", &[1, 8]),
        zeros("h", &[2, 4]),
        zeros("out", &[2, 4]),
        zeros("stats", &[2, 2]),
    );
    assert!(op.forward(gpu(), &m, &h, &out, &stats).is_err());
    let gate = Gate {
        shape: s,
        offset: 5,
    };
    assert!(gate.forward(gpu(), &m, (&h, None), (&h, &out)).is_err());
    let wrong_stats = zeros("stats", &[2]);
    let op = ModulatedNorm {
        at: ShiftScale { shift: 0, scale: 4 },
        ..op
    };
    let err = op.forward(gpu(), &m, &h, &out, &wrong_stats).unwrap_err();
    assert!(err.to_string().contains("'stats'"), "{err}");
}

/// More rows than one grid dimension holds (the row kernels fold their index
/// over workgroups x and y), and a sequence of 70,001 positions for the
/// per-sequence sums; the same input gives the same bits.
#[test]
fn modulated_norm_rows_beyond_one_grid_dimension() {
    let s = ModShape {
        batch: 1,
        seq: 70_001,
        d: 5,
        stride: 10,
    };
    let at = ShiftScale { shift: 0, scale: 5 };
    let (rows, d) = (s.seq, s.d);
    let mut rng = Rng::new(80);
    let (m, h, dout) = (
        rng.normals(s.stride),
        rng.normals(rows * d),
        rng.normals(rows * d),
    );
    let (gm, gh, gdout) = (
        upload("mod", &[1, s.stride], &m),
        upload("h", &[rows, d], &h),
        upload("dout", &[rows, d], &dout),
    );
    let (gout, gstats, gdh, gdm) = (
        zeros("out", &[rows, d]),
        zeros("stats", &[rows, 2]),
        zeros("dh", &[rows, d]),
        zeros("dmod", &[1, s.stride]),
    );
    for kind in [NormKind::Rms, NormKind::Layer] {
        let label = format!("{kind:?} modulated norm {rows} rows");
        let op = ModulatedNorm {
            shape: s,
            kind,
            eps: EPS,
            at,
        };
        let normalised = normalise(kind, &h, d);
        let want_out = reference::modulate(&m, &normalised, s.seq, d, s.stride, at.shift, at.scale);
        let (want_dh, want_dm) = reference_backward(&op, &m, &h, &dout);
        let mut passes = vec![op.forward(gpu(), &gm, &gh, &gout, &gstats).unwrap()];
        passes.extend(
            op.backward(gpu(), (&gm, &gdm), (&gh, &gstats), &gdout, &gdh, false)
                .unwrap(),
        );
        run(passes.clone());
        let (out, dh, dm) = (read(&gout), read(&gdh), read(&gdm));
        check(&format!("{label} fwd"), &out, &want_out, TOL_F32);
        check(&format!("{label} dh"), &dh, &want_dh, TOL_F32);
        check(&format!("{label} dmod"), &dm, &want_dm, TOL_F32);
        run(passes);
        assert_eq!(read(&gout), out, "{label}: forward is not repeatable");
        assert_eq!(read(&gdh), dh, "{label}: dh is not repeatable");
        assert_eq!(read(&gdm), dm, "{label}: dmod is not repeatable");
    }
}
