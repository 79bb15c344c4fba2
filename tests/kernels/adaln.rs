use samnet_core::ops::adaln::{self, ModShape, ShiftScale};
use samnet_core::reference::adaln as reference;
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

fn modulate_case(s: ModShape, at: ShiftScale, seed: u64) {
    let label = format!("modulate B{} L{} d{}", s.batch, s.seq, s.d);
    let n = s.batch * s.seq * s.d;
    let mut rng = Rng::new(seed);
    let (m, x, dy) = (
        rng.normals(s.batch * s.stride),
        rng.normals(n),
        rng.normals(n),
    );
    let (gm, gx, gy) = (
        upload("mod", &[s.batch, s.stride], &m),
        upload("x", &[n], &x),
        zeros("y", &[n]),
    );
    let forward = vec![adaln::modulate_forward(gpu(), s, at, &gm, &gx, &gy).unwrap()];
    run(forward.clone());
    let fwd_x = |v: &[f64]| reference::modulate(&m, v, s.seq, s.d, s.stride, at.shift, at.scale);
    let fwd_m = |v: &[f64]| reference::modulate(v, &x, s.seq, s.d, s.stride, at.shift, at.scale);
    check(&format!("{label} fwd"), &read(&gy), &fwd_x(&x), TOL_F32);

    let (want_dx, want_dm) =
        reference::modulate_backward(&m, &x, &dy, s.seq, s.d, s.stride, at.shift, at.scale);
    let (gdy, gdx) = (upload("dy", &[n], &dy), zeros("dx", &[n]));
    let gdm = upload("dmod", &[s.batch, s.stride], &vec![7.0; s.batch * s.stride]);
    run(adaln::modulate_backward(gpu(), s, at, &gm, &gx, &gdy, &gdx, &gdm).unwrap());
    let got_dm = written_blocks(&read(&gdm), s, &[at.shift, at.scale], 7.0);
    check_backward(
        &format!("{label} dx"),
        &x,
        &dy,
        &want_dx,
        &read(&gdx),
        fwd_x,
        gpu_forward(&gx, &x, &forward, &gy),
        &mut rng,
    );
    check_backward(
        &format!("{label} dmod"),
        &m,
        &dy,
        &want_dm,
        &got_dm,
        fwd_m,
        gpu_forward(&gm, &m, &forward, &gy),
        &mut rng,
    );
}

#[test]
fn modulate_forward_and_backward() {
    let d = SMALL.d;
    let at = ShiftScale {
        shift: 3 * d,
        scale: 4 * d,
    };
    modulate_case(SMALL, at, 70);
    let d = WIDE.d;
    let at = ShiftScale {
        shift: 4 * d,
        scale: d,
    };
    modulate_case(WIDE, at, 72);
}

fn gate_case(s: ModShape, gate: usize, seed: u64) {
    let label = format!("gate B{} L{} d{}", s.batch, s.seq, s.d);
    let n = s.batch * s.seq * s.d;
    let mut rng = Rng::new(seed);
    let (m, y, h, dh) = (
        rng.normals(s.batch * s.stride),
        rng.normals(n),
        rng.normals(n),
        rng.normals(n),
    );
    let (gm, gy, gh) = (
        upload("mod", &[s.batch, s.stride], &m),
        upload("y", &[n], &y),
        upload("h", &[n], &h),
    );
    let forward = vec![adaln::gate_forward(gpu(), s, gate, &gm, &gy, &gh).unwrap()];
    run(forward.clone());
    let fwd_y = |v: &[f64]| reference::gate(&m, v, &h, s.seq, s.d, s.stride, gate);
    let fwd_m = |v: &[f64]| reference::gate(v, &y, &h, s.seq, s.d, s.stride, gate);
    check(&format!("{label} fwd"), &read(&gh), &fwd_y(&y), TOL_F32);

    let (want_dy, want_dm) = reference::gate_backward(&m, &y, &dh, s.seq, s.d, s.stride, gate);
    let (gdh, gdy, gdm) = (
        upload("dh", &[n], &dh),
        zeros("dy", &[n]),
        upload("dmod", &[s.batch, s.stride], &vec![7.0; s.batch * s.stride]),
    );
    run(adaln::gate_backward(gpu(), s, gate, &gm, &gy, &gdh, &gdy, &gdm).unwrap());
    let got_dm = written_blocks(&read(&gdm), s, &[gate], 7.0);
    // The forward updates h in place, so the GPU forward restarts from h each time.
    let gpu_fwd = |input: &samnet_core::gpu::Tensor, original: &[f64], values: &[f64]| {
        write(&gh, &h);
        write(input, values);
        run(forward.clone());
        write(input, original);
        read(&gh)
    };
    check_backward(
        &format!("{label} dy"),
        &y,
        &dh,
        &want_dy,
        &read(&gdy),
        fwd_y,
        |v| gpu_fwd(&gy, &y, v),
        &mut rng,
    );
    check_backward(
        &format!("{label} dmod"),
        &m,
        &dh,
        &want_dm,
        &got_dm,
        fwd_m,
        |v| gpu_fwd(&gm, &m, v),
        &mut rng,
    );
}

#[test]
fn gate_forward_and_backward() {
    gate_case(SMALL, 5 * SMALL.d, 71);
    gate_case(WIDE, 2 * WIDE.d, 73);
}

#[test]
fn offsets_outside_the_stride_are_rejected() {
    let s = ModShape {
        batch: 1,
        seq: 2,
        d: 4,
        stride: 8,
    };
    let at = ShiftScale { shift: 0, scale: 6 };
    let (m, x, y) = (
        zeros("mod", &[1, 8]),
        zeros("x", &[2, 4]),
        zeros("y", &[2, 4]),
    );
    assert!(adaln::modulate_forward(gpu(), s, at, &m, &x, &y).is_err());
}
