//! The whole model: identity at initialisation, parity with the PyTorch
//! reference (tests/reference/samnet.py, golden values in
//! tests/fixtures/parity.safetensors), and a gradient check against central
//! differences of the f64 CPU reference model.

use std::collections::HashMap;

use samnet_core::checkpoint::{self, NamedTensor};
use samnet_core::config::{Config, DiffusionKind, KnownPositions};
use samnet_core::hybrid::{self, Corruption};
use samnet_core::model::Model;
use samnet_core::model::graph::{Graph, GraphOptions, slot};
use samnet_core::reference::model::Dropout;
use samnet_core::schedule::NoiseSchedule;
use samnet_tests::*;

struct Fixture {
    config: Config,
    tensors: HashMap<String, NamedTensor>,
}

fn fixture() -> Fixture {
    fixture_file("parity.safetensors")
}

fn fixture_file(name: &str) -> Fixture {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let path = path.as_str();
    let bytes = std::fs::read(path).expect("fixture");
    let (tensors, meta) = checkpoint::decode(&bytes, path).expect("fixture decodes");
    let config = Config::from_json(&meta["config"], "fixture config").expect("fixture config");
    Fixture {
        config,
        tensors: tensors.into_iter().map(|t| (t.name.clone(), t)).collect(),
    }
}

impl Fixture {
    fn get(&self, name: &str) -> &NamedTensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture lacks {name}"))
    }

    fn with_prefix(&self, prefix: &str) -> Vec<NamedTensor> {
        let mut v: Vec<NamedTensor> = self
            .tensors
            .values()
            .filter_map(|t| {
                t.name.strip_prefix(prefix).map(|n| NamedTensor {
                    name: n.to_string(),
                    ..t.clone()
                })
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn f64s(&self, name: &str) -> Vec<f64> {
        self.get(name).data.iter().map(|&x| x as f64).collect()
    }

    /// The fixture's weights as a model, and its training graph at the
    /// fixture's batch shape (noise written by the test, not drawn).
    fn graph(&self) -> (Model, Graph) {
        let cfg = &self.config;
        let model = Model::from_tensors(gpu(), cfg, self.with_prefix("param."), "fixture").unwrap();
        let options = GraphOptions {
            batch: cfg.train.batch_size,
            seq: cfg.train.seq_len,
            train: true,
            generate_noise: false,
            dropout: false,
            half_operands: false,
        };
        let graph = Graph::new(gpu(), &model, options, None).unwrap();
        (model, graph)
    }

    /// Forward, loss and backward of a written batch; every parameter's
    /// gradient against the fixture's. Returns the loss slots.
    fn run_and_check_gradients(&self, model: &Model, graph: &Graph) -> Vec<f64> {
        let stats = forward_and_backward(graph);
        let mut worst = (0.0, String::new());
        for (spec, g) in model.specs.iter().zip(&graph.grads) {
            let name = format!("grad.{}", spec.name);
            let err = check(
                &format!("parity {name}"),
                &read(g),
                &self.f64s(&name),
                TOL_F32,
            );
            if err > worst.0 {
                worst = (err, spec.name.clone());
            }
        }
        println!("worst gradient: {} at {:.3e}", worst.1, worst.0);
        stats
    }

    fn ints(&self, name: &str) -> Vec<u32> {
        // Stored as int32 in safetensors; decode() turns every dtype it accepts into f32.
        self.get(name).data.iter().map(|&x| x as u32).collect()
    }
}

/// One training pass of a written batch (loss scale 1): forward, loss and
/// backward. Returns the stats slots.
fn forward_and_backward(graph: &Graph) -> Vec<f64> {
    let mut stats = vec![0.0; slot::COUNT];
    stats[slot::LOSS_SCALE] = 1.0;
    write(&graph.stats, &stats);
    gpu()
        .run(&[
            &graph.embed_table,
            &graph.front,
            &graph.core,
            &graph.loss,
            &graph.backward,
        ])
        .unwrap();
    read(&graph.stats)
}

/// A hybrid batch with the given per-position loss weights and clean mask,
/// each sequence's input coefficients from its timestep.
fn corruption(cfg: &Config, timesteps: &[u32], weight: Vec<f32>, clean: Vec<f32>) -> Corruption {
    Corruption {
        timesteps: timesteps.to_vec(),
        coef: (timesteps.iter())
            .flat_map(|&k| hybrid::sequence_coef(&cfg.diffusion, cfg.model.d_model, k))
            .collect(),
        weight,
        clean,
    }
}

#[test]
fn matches_the_pytorch_reference_loss_and_every_gradient() {
    gaussian_matches_the_pytorch_reference(fixture());
}

/// The gaussian levers against PyTorch's `forward`
/// (tests/fixtures/parity_levers.safetensors): a 10-wide embedding table
/// under d_model 24 and Plaid's output prior (weight 0.5) in the logits,
/// whose |Ê_v|² term PyTorch keeps and the GPU's readout drops.
#[test]
fn gaussian_levers_match_the_pytorch_reference_loss_and_every_gradient() {
    let fx = fixture_file("parity_levers.safetensors");
    assert_eq!(fx.config.embed_dim(), 10);
    assert_eq!(fx.config.diffusion.output_prior, 0.5);
    gaussian_matches_the_pytorch_reference(fx);
}

fn gaussian_matches_the_pytorch_reference(fx: Fixture) {
    let gpu = gpu();
    let cfg = &fx.config;
    let (model, graph) = fx.graph();
    let schedule = NoiseSchedule::new(&cfg.diffusion);
    let weight: Vec<f32> = fx.get("input.weight").data.clone();
    graph
        .write_batch(
            gpu,
            &schedule,
            &fx.ints("input.tokens"),
            &fx.ints("input.t"),
            &weight,
        )
        .unwrap();
    gpu.write_f32(&graph.inputs.noise, &fx.get("input.eps").data)
        .unwrap();
    if cfg.diffusion.self_condition {
        gpu.write_f32(&graph.sc, &fx.get("input.sc").data).unwrap();
    }
    let stats = fx.run_and_check_gradients(&model, &graph);
    check(
        "parity mse",
        &[stats[slot::MSE]],
        &fx.f64s("output.mse"),
        TOL_F32,
    );
    check(
        "parity ce",
        &[stats[slot::CE]],
        &fx.f64s("output.ce"),
        TOL_F32,
    );
    check(
        "parity z0_pred",
        &read(&graph.z0_pred),
        &fx.f64s("output.z0_pred"),
        TOL_F32,
    );
}

/// diffusion.kind "hybrid" against PyTorch's `discrete_loss`
/// (tests/fixtures/parity_hybrid.safetensors): the corrupted positions'
/// input (Ê[w] + sigma_t·eps)/sqrt(1 + sigma_t²), the logits, the 1/t-weighted
/// CE over B·L and every parameter gradient.
#[test]
fn hybrid_matches_the_pytorch_reference_loss_and_every_gradient() {
    discrete_kind_matches_the_pytorch_reference("parity_hybrid.safetensors", DiffusionKind::Hybrid);
}

/// diffusion.kind "masked" against PyTorch's `discrete_loss`
/// (tests/fixtures/parity_masked.safetensors): the corrupted positions'
/// input rmsnorm(mask_embedding), the logits, the 1/t-weighted CE and every
/// parameter gradient, the mask row's included.
#[test]
fn masked_matches_the_pytorch_reference_loss_and_every_gradient() {
    discrete_kind_matches_the_pytorch_reference("parity_masked.safetensors", DiffusionKind::Masked);
}

fn discrete_kind_matches_the_pytorch_reference(file: &str, kind: DiffusionKind) {
    let fx = fixture_file(file);
    let gpu = gpu();
    let cfg = &fx.config;
    assert_eq!(cfg.diffusion.kind, kind);
    let (model, graph) = fx.graph();
    let seq = cfg.train.seq_len;
    let timesteps = fx.ints("input.t");
    let corrupt = &fx.get("input.corrupt").data;
    let t_max = cfg.diffusion.timesteps as f32;
    let weight: Vec<f32> = (corrupt.iter().enumerate())
        .map(|(r, &c)| c * t_max / timesteps[r / seq] as f32)
        .collect();
    let clean: Vec<f32> = corrupt.iter().map(|&c| 1.0 - c).collect();
    let corruption = corruption(cfg, &timesteps, weight, clean);
    graph
        .write_corruption(gpu, &fx.ints("input.tokens"), &corruption)
        .unwrap();
    gpu.write_f32(&graph.inputs.noise, &fx.get("input.eps").data)
        .unwrap();
    let stats = fx.run_and_check_gradients(&model, &graph);
    let name = kind.name();
    check(
        &format!("{name} parity loss"),
        &[stats[slot::CE]],
        &fx.f64s("output.loss"),
        TOL_F32,
    );
    check(
        &format!("{name} parity logits"),
        &read(&graph.logits),
        &fx.f64s("output.logits"),
        TOL_F32,
    );
}

#[test]
fn every_block_is_the_identity_at_initialisation() {
    let cfg = Config::preset("tiny").unwrap();
    let gpu = gpu();
    let model = Model::new(gpu, &cfg, 3).unwrap();
    let (batch, seq) = (2, 13);
    let graph = Graph::new(
        gpu,
        &model,
        GraphOptions {
            batch,
            seq,
            train: false,
            generate_noise: true,
            dropout: false,
            half_operands: false,
        },
        None,
    )
    .unwrap();
    let mut rng = Rng::new(4);
    let tokens: Vec<u32> = (0..batch * seq)
        .map(|_| rng.below(cfg.model.vocab_size as u64) as u32)
        .collect();
    graph
        .write_batch(
            gpu,
            &NoiseSchedule::new(&cfg.diffusion),
            &tokens,
            &[100, 900],
            &vec![1.0; batch * seq],
        )
        .unwrap();
    gpu.write_u32(&graph.inputs.rng_key, &[1, 2, 0]).unwrap();
    gpu.run(&[&graph.embed_table, &graph.front, &graph.core])
        .unwrap();
    let first = read(&graph.residual[0]);
    assert!(first.iter().any(|&x| x != 0.0));
    for (l, h) in graph.residual.iter().enumerate().skip(1) {
        assert_eq!(
            read(h),
            first,
            "block {} changed its input at initialisation",
            l - 1
        );
    }
}

/// A model with random (not initial) parameters on the GPU, its values kept
/// in f64 for the CPU reference, and one training batch of (2, 9).
struct RandomModel {
    cfg: Config,
    specs: Vec<samnet_core::model::params::ParamSpec>,
    values: Vec<Vec<f64>>,
    /// Owns the parameters the graph reads.
    _model: Model,
    graph: Graph,
    tokens: Vec<u32>,
    timesteps: [u32; 2],
    eps: Vec<f64>,
    /// Training-mode dropout (rate `cfg.model.dropout`) keyed by this, or none.
    dropout_key: Option<[u32; 2]>,
}

impl RandomModel {
    fn new(cfg: Config, rng: &mut Rng, dropout_key: Option<[u32; 2]>) -> RandomModel {
        let gpu = gpu();
        let specs = samnet_core::model::params::param_specs(&cfg);
        let values: Vec<Vec<f64>> = specs
            .iter()
            .map(|s| {
                let scale = if s.name == "embedding.weight" {
                    1.0
                } else if s.name.ends_with("bias") {
                    0.3
                } else {
                    1.0 / (s.shape[s.shape.len() - 1] as f64).sqrt()
                };
                rng.normals(s.len())
                    .iter()
                    .map(|v| (v * scale) as f32 as f64)
                    .collect()
            })
            .collect();
        let tensors: Vec<NamedTensor> = specs
            .iter()
            .zip(&values)
            .map(|(s, v)| NamedTensor {
                name: s.name.clone(),
                shape: s.shape.clone(),
                data: v.iter().map(|&x| x as f32).collect(),
            })
            .collect();
        let model = Model::from_tensors(gpu, &cfg, tensors, "random").unwrap();
        let (batch, seq) = (2, 9);
        let rows = batch * seq;
        let tokens: Vec<u32> = (0..rows)
            .map(|_| rng.below(cfg.model.vocab_size as u64) as u32)
            .collect();
        let eps: Vec<f64> = rng
            .normals(rows * cfg.embed_dim())
            .iter()
            .map(|&v| v as f32 as f64)
            .collect();
        let graph = Graph::new(
            gpu,
            &model,
            GraphOptions {
                batch,
                seq,
                train: true,
                generate_noise: false,
                dropout: dropout_key.is_some(),
                half_operands: false,
            },
            None,
        )
        .unwrap();
        RandomModel {
            cfg,
            specs,
            values,
            _model: model,
            graph,
            tokens,
            timesteps: [137, 802],
            eps,
            dropout_key,
        }
    }

    /// Forward, loss and backward on the GPU: (stats, one gradient per parameter).
    fn run(&self, eps: &[f64], weight: &[f64], known: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
        let (gpu, graph) = (gpu(), &self.graph);
        let to32 = |v: &[f64]| v.iter().map(|&w| w as f32).collect::<Vec<f32>>();
        let diffusion = &self.cfg.diffusion;
        if diffusion.kind.is_discrete() {
            let corruption = corruption(&self.cfg, &self.timesteps, to32(weight), to32(known));
            graph
                .write_corruption(gpu, &self.tokens, &corruption)
                .unwrap();
        } else {
            graph
                .write_batch(
                    gpu,
                    &NoiseSchedule::new(diffusion),
                    &self.tokens,
                    &self.timesteps,
                    &to32(weight),
                )
                .unwrap();
            graph.write_known(gpu, &to32(known)).unwrap();
        }
        if let Some(key) = self.dropout_key {
            gpu.write_u32(&graph.inputs.rng_key, &[key[0], key[1], 0])
                .unwrap();
        }
        write(&graph.inputs.noise, eps);
        let stats = forward_and_backward(graph);
        let grads: Vec<Vec<f64>> = graph.grads.iter().map(read).collect();
        // The gradient norm sums whole packed chunks: their padding stays zero.
        let in_tensors: f64 = grads.iter().flatten().map(|g| g * g).sum();
        let in_chunks: f64 = graph.grad_chunks.iter().flat_map(read).map(|g| g * g).sum();
        assert!(
            (in_chunks - in_tensors).abs() <= 1e-12 * in_tensors,
            "packed gradients: {in_chunks} in the chunks, {in_tensors} in the tensors"
        );
        (stats, grads)
    }

    /// The GPU's losses against the f64 reference, and its gradients against
    /// central differences of the reference (a few coordinates of every parameter).
    fn check_against_reference(&self, weight: &[f64], known: &[f64], rng: &mut Rng) {
        let (gpu_stats, grads) = self.run(&self.eps, weight, known);
        let batch_ref = samnet_core::reference::model::Batch {
            tokens: &self.tokens,
            timesteps: &self.timesteps,
            eps: &self.eps,
            weight,
            known,
            dropout: self.dropout_key.map(|key| Dropout {
                key,
                p: self.cfg.model.dropout as f64,
            }),
        };
        let mut params: HashMap<String, Vec<f64>> = self
            .specs
            .iter()
            .zip(&self.values)
            .map(|(s, v)| (s.name.clone(), v.clone()))
            .collect();
        let cfg = &self.cfg;
        let (_, mse, ce) = samnet_core::reference::model::loss(cfg, &params, &batch_ref);
        check(
            "model mse vs cpu reference",
            &[gpu_stats[slot::MSE]],
            &[mse],
            TOL_F32,
        );
        check(
            "model ce vs cpu reference",
            &[gpu_stats[slot::CE]],
            &[ce],
            TOL_F32,
        );
        for (spec, got) in self.specs.iter().zip(&grads) {
            let pick = coords(rng, spec.len(), 3);
            let name = spec.name.clone();
            let original = params[&name].clone();
            check_fd(
                &format!("model grad {name} vs fd of cpu reference"),
                got,
                |v| {
                    params.insert(name.clone(), v.to_vec());
                    let l = samnet_core::reference::model::loss(cfg, &params, &batch_ref).0;
                    params.insert(name.clone(), original.clone());
                    l
                },
                &original,
                &pick,
                1e-5,
                TOL_F32,
            );
        }
    }
}

/// GPU gradients of the whole model against central differences of the f64
/// CPU reference, on the parity config switched to LayerNorm (the parity
/// test covers RMSNorm), a few coordinates of every parameter.
#[test]
fn whole_model_gradients_match_finite_differences_of_the_cpu_reference() {
    let mut cfg = fixture().config;
    cfg.model.norm = samnet_core::config::NormKind::Layer;
    let mut rng = Rng::new(77);
    let m = RandomModel::new(cfg, &mut rng, None);
    let rows = m.tokens.len();
    let weight: Vec<f64> = (0..rows)
        .map(|i| if i % 5 == 0 { 0.0 } else { 1.0 })
        .collect();
    m.check_against_reference(&weight, &vec![0.0; rows], &mut rng);
}

/// diffusion.kind "hybrid": clean positions carry Ê[w], corrupted ones
/// (Ê[w] + sigma_t·eps)/sqrt(1 + sigma_t²), the loss is the 1/t-weighted CE
/// over every position, no MSE; GPU loss and gradients against the f64
/// reference and its central differences.
#[test]
fn hybrid_gradients_match_finite_differences_of_the_cpu_reference() {
    discrete_gradients_match_finite_differences(DiffusionKind::Hybrid, 79);
}

/// diffusion.kind "masked": as hybrid, with every corrupted position's input
/// the mask row rmsnorm(M), whose gradient is checked with the rest.
/// Its table (and mask row) narrower than d_model: `diffusion.embed_dim`.
#[test]
fn masked_gradients_match_finite_differences_of_the_cpu_reference() {
    discrete_gradients_match_finite_differences(DiffusionKind::Masked, 80);
}

fn discrete_gradients_match_finite_differences(kind: DiffusionKind, seed: u64) {
    let mut cfg = fixture().config;
    let d = &mut cfg.diffusion;
    (d.kind, d.self_condition, d.clamp, d.mse_weight) = (kind, false, false, 0.0);
    if kind == DiffusionKind::Masked {
        d.embed_dim = Some(7);
    }
    cfg.validate().unwrap();
    let mut rng = Rng::new(seed);
    let m = RandomModel::new(cfg, &mut rng, None);
    let rows = m.tokens.len();
    let seq = rows / m.timesteps.len();
    let t_max = m.cfg.diffusion.timesteps as f64;
    let clean: Vec<f64> = (0..rows)
        .map(|i| if i % 3 == 0 { 1.0 } else { 0.0 })
        .collect();
    let weight: Vec<f64> = (0..rows)
        .map(|i| (1.0 - clean[i]) * t_max / m.timesteps[i / seq] as f64)
        .collect();
    m.check_against_reference(&weight, &clean, &mut rng);
    let (stats, _) = m.run(&m.eps, &weight, &clean);
    assert_eq!(stats[slot::MSE], 0.0, "{kind:?} has no MSE term");
    assert_eq!(
        stats[slot::WEIGHT_SUM],
        rows as f64,
        "normalised per position"
    );
}

/// The gaussian kind's levers: an embedding table narrower than d_model (7
/// of 24, read through the input projection and written by the final one)
/// and Plaid's output prior, whose readout u = α·z0_pred + β_b·x_t drops
/// the prior's |Ê_v|² term (the same for every unit-RMS row) that the f64
/// reference keeps: GPU loss and gradients against the reference and its
/// central differences, the embedding's gradient reaching it through x_t too.
#[test]
fn gaussian_levers_gradients_match_finite_differences_of_the_cpu_reference() {
    let mut cfg = fixture().config;
    let d = &mut cfg.diffusion;
    (d.embed_dim, d.output_prior) = (Some(7), 0.5);
    cfg.validate().unwrap();
    let mut rng = Rng::new(81);
    let m = RandomModel::new(cfg, &mut rng, None);
    let rows = m.tokens.len();
    let weight: Vec<f64> = (0..rows)
        .map(|i| if i % 4 == 1 { 0.0 } else { 1.0 })
        .collect();
    m.check_against_reference(&weight, &vec![0.0; rows], &mut rng);
    let without_prior = {
        let mut cfg = m.cfg.clone();
        cfg.diffusion.output_prior = 0.0;
        RandomModel::new(cfg, &mut Rng::new(81), None)
    };
    let (with, _) = m.run(&m.eps, &weight, &vec![0.0; rows]);
    let (without, _) = without_prior.run(&m.eps, &weight, &vec![0.0; rows]);
    assert_eq!(
        with[slot::MSE],
        without[slot::MSE],
        "the prior leaves z0_pred alone"
    );
    assert!(
        (with[slot::CE] - without[slot::CE]).abs() > 1e-3,
        "the prior did not change the CE: {} vs {}",
        with[slot::CE],
        without[slot::CE]
    );
}

/// Training mode: with dropout on both residual branches of every block,
/// the GPU's loss and gradients agree with the f64 reference drawing the
/// same masks, and the masks matter (the loss differs from evaluation mode).
#[test]
fn whole_model_gradients_with_dropout_match_finite_differences() {
    let mut cfg = fixture().config;
    cfg.model.dropout = 0.3;
    let mut rng = Rng::new(78);
    let m = RandomModel::new(cfg, &mut rng, Some([11, 4]));
    let rows = m.tokens.len();
    let (weight, known) = (vec![1.0; rows], vec![0.0; rows]);
    m.check_against_reference(&weight, &known, &mut rng);
    let eval_mode = RandomModel::new(m.cfg.clone(), &mut Rng::new(78), None);
    let (with_dropout, _) = m.run(&m.eps, &weight, &known);
    let (without, _) = eval_mode.run(&m.eps, &weight, &known);
    assert!(
        (with_dropout[slot::MSE] - without[slot::MSE]).abs() > 1e-3 * without[slot::MSE],
        "dropout did not change the mse: {} vs {}",
        with_dropout[slot::MSE],
        without[slot::MSE]
    );
}

/// Phase 4 (instruction tuning): each sequence's prompt is known — held at
/// its clean embedding — and out of the loss. The GPU agrees with the f64
/// reference and its finite differences; the noise drawn at prompt
/// positions cannot change the loss or any gradient (bit for bit), while
/// noise at a response position does.
#[test]
fn prompt_positions_are_held_clean_and_left_out_of_the_loss() {
    let mut cfg = fixture().config;
    cfg.diffusion.known_positions = KnownPositions::Clean;
    let mut rng = Rng::new(78);
    let m = RandomModel::new(cfg, &mut rng, None);
    let (seq, d) = (9, m.cfg.model.d_model);
    let rows = m.tokens.len();
    // Prompts of 4 and 2 positions; responses after them.
    let known: Vec<f64> = (0..rows)
        .map(|r| if r % seq < [4, 2][r / seq] { 1.0 } else { 0.0 })
        .collect();
    let weight: Vec<f64> = known.iter().map(|k| 1.0 - k).collect();
    m.check_against_reference(&weight, &known, &mut rng);

    let (stats, grads) = m.run(&m.eps, &weight, &known);
    let mut prompt_noise = m.eps.clone();
    for (i, e) in prompt_noise.iter_mut().enumerate() {
        if known[i / d] != 0.0 {
            *e = -3.0 * *e + 1.0;
        }
    }
    let (stats2, grads2) = m.run(&prompt_noise, &weight, &known);
    assert_eq!(
        (stats[slot::MSE], stats[slot::CE]),
        (stats2[slot::MSE], stats2[slot::CE]),
        "noise at prompt positions changed the loss"
    );
    for ((spec, a), b) in m.specs.iter().zip(&grads).zip(&grads2) {
        assert_eq!(a, b, "noise at prompt positions changed grad {}", spec.name);
    }
    let mut response_noise = m.eps.clone();
    response_noise[5 * d] += 1.0;
    let (stats3, _) = m.run(&response_noise, &weight, &known);
    assert_ne!(stats[slot::MSE], stats3[slot::MSE]);
}

/// Under self-conditioning, the first pass's estimate reaches `sc` for the
/// masked-in sequences and zeros for the others.
#[test]
fn self_conditioning_feeds_the_first_pass_estimate_to_masked_sequences() {
    let mut cfg = Config::preset("tiny").unwrap();
    cfg.diffusion.self_condition = true;
    let gpu = gpu();
    let model = Model::new(gpu, &cfg, 5).unwrap();
    let (batch, seq, d) = (2, 11, cfg.model.d_model);
    let options = GraphOptions {
        batch,
        seq,
        train: false,
        generate_noise: true,
        dropout: false,
        half_operands: false,
    };
    let graph = Graph::new(gpu, &model, options, None).unwrap();
    let tokens: Vec<u32> = (0..batch * seq)
        .map(|i| (i * 7 % cfg.model.vocab_size) as u32)
        .collect();
    graph
        .write_batch(
            gpu,
            &NoiseSchedule::new(&cfg.diffusion),
            &tokens,
            &[300, 700],
            &vec![1.0; batch * seq],
        )
        .unwrap();
    gpu.write_u32(&graph.inputs.rng_key, &[9, 9, 0]).unwrap();
    graph
        .write_self_condition_mask(gpu, &[true, false])
        .unwrap();
    write(&graph.sc, &vec![3.0; batch * seq * d]);
    gpu.run(&[
        &graph.embed_table,
        &graph.front,
        &graph.sc_clear,
        &graph.core,
        &graph.sc_capture,
    ])
    .unwrap();
    let (sc, z0_pred) = (read(&graph.sc), read(&graph.z0_pred));
    let first = seq * d;
    assert_eq!(
        &sc[..first],
        &z0_pred[..first],
        "sequence 0 must get the estimate"
    );
    assert!(
        sc[first..].iter().all(|&x| x == 0.0),
        "sequence 1 must get zeros"
    );
    assert!(z0_pred[..first].iter().any(|&x| x != 0.0));
}

/// While sampling, known positions sit where training put them: re-noised
/// to each step's level (`noised`), or at their clean embedding throughout
/// (`clean`, phase 4); both end clean. Step reports show them with their
/// known tokens.
#[test]
fn sampling_holds_known_positions_as_the_model_was_trained() {
    use samnet_core::conditioning::Known;
    use samnet_core::sample::{SampleOptions, Sampler, StepOutput};
    use std::ops::ControlFlow;
    for held in [KnownPositions::Noised, KnownPositions::Clean] {
        let mut cfg = Config::preset("tiny").unwrap();
        cfg.diffusion.known_positions = held;
        let gpu = gpu();
        let model = Model::new(gpu, &cfg, 3).unwrap();
        let (len, d, known_rows) = (12, cfg.model.d_model, 5);
        let sampler = Sampler::new(gpu, &model, 1, len).unwrap();
        let known = Known {
            tokens: (0..len as u32).map(|i| i * 5 % 60).collect(),
            mask: (0..len).map(|i| i < known_rows).collect(),
        };
        let mut states = Vec::new();
        let mut record = |s: StepOutput| {
            // Every step shows the known text, as settled, whatever the model guesses there.
            assert_eq!(s.tokens[..known_rows], known.tokens[..known_rows]);
            assert_eq!(s.frozen, known.mask);
            assert!(s.confidence[..known_rows].iter().all(|&c| c == 1.0));
            states.push(read(&sampler.graph().x_t)[..known_rows * d].to_vec());
            ControlFlow::Continue(())
        };
        let options = SampleOptions {
            steps: 4,
            ..SampleOptions::from_config(&cfg.diffusion)
        };
        let schedule = NoiseSchedule::new(&cfg.diffusion);
        pollster::block_on(sampler.run(gpu, &schedule, &options, Some(&known), Some(&mut record)))
            .unwrap();
        let e_hat = read(&sampler.graph().e_hat);
        let clean: Vec<f64> = known.tokens[..known_rows]
            .iter()
            .flat_map(|&t| e_hat[t as usize * d..][..d].to_vec())
            .map(|x| cfg.diffusion.signal_scale as f64 * x)
            .collect();
        let is_clean = |x: &[f64]| x.iter().zip(&clean).all(|(a, b)| (a - b).abs() < 1e-6);
        let (last, before) = states.split_last().unwrap();
        assert!(is_clean(last), "{held:?}: the last step ends clean");
        for (i, x) in before.iter().enumerate() {
            assert_eq!(
                is_clean(x),
                held == KnownPositions::Clean,
                "{held:?}, step {i}"
            );
        }
    }
}

/// A run sampled in batches draws what one batch of the whole run draws:
/// a batch whose `first_sequence` is k gives sequence k the tokens a batch
/// from sequence 0 gives it, for every kind and every random draw in it
/// (starting noise, tokens at temperature > 0, random reveals, fresh noise
/// at eta > 0), with known positions held.
#[test]
fn a_sequence_samples_the_same_in_any_batch() {
    use samnet_core::conditioning::Known;
    use samnet_core::config::RevealOrder;
    use samnet_core::sample::{SampleOptions, Sampler};
    for preset in ["tiny", "tiny-hybrid", "tiny-masked"] {
        let cfg = Config::preset(preset).unwrap();
        let gpu = gpu();
        let model = Model::new(gpu, &cfg, 3).unwrap();
        let schedule = NoiseSchedule::new(&cfg.diffusion);
        let (count, len) = (3, 10);
        let known = |sequences: std::ops::Range<usize>| Known {
            tokens: sequences
                .clone()
                .flat_map(|s| (0..len).map(move |i| ((s * 7 + i * 3) % 50) as u32))
                .collect(),
            mask: sequences.flat_map(|_| (0..len).map(|i| i < 3)).collect(),
        };
        let sample_from = |sequences: std::ops::Range<usize>, first_sequence: u32| {
            let sampler = Sampler::new(gpu, &model, sequences.len(), len).unwrap();
            let options = SampleOptions {
                steps: 4,
                seed: 17,
                first_sequence,
                temperature: 0.9,
                order: RevealOrder::Random,
                eta: if cfg.diffusion.kind.is_discrete() {
                    0.0
                } else {
                    0.7
                },
                ..SampleOptions::from_config(&cfg.diffusion)
            };
            let known = known(sequences);
            pollster::block_on(sampler.run(gpu, &schedule, &options, Some(&known), None)).unwrap()
        };
        let sample = |sequences: std::ops::Range<usize>| {
            let first = sequences.start as u32;
            sample_from(sequences, first)
        };
        let whole = sample(0..count);
        assert_eq!(sample(0..1), whole[..len], "{preset}");
        assert_eq!(sample(1..count), whole[len..], "{preset}");
        assert_eq!(sample(2..3), whole[2 * len..], "{preset}");
        // Keyed as a run's first batch, the same sequences draw other tokens.
        assert_ne!(sample_from(1..count, 0), whole[len..], "{preset}");
    }
}

/// `--order blocks` counts its blocks of `REVEAL_BLOCK` positions from the
/// first hidden position, as LLaDA counts them from the answer's start: at
/// every step the frozen positions after a prompt are whole blocks and then
/// part of the next, never a position of a later block before all of an
/// earlier one. The prompt's length is not a multiple of the block, so
/// blocks counted from the window's start would break this.
#[test]
fn blocks_count_from_the_prompts_end() {
    use samnet_core::conditioning::Known;
    use samnet_core::config::{REVEAL_BLOCK, RevealOrder};
    use samnet_core::sample::{SampleOptions, Sampler, StepOutput};
    use std::ops::ControlFlow;
    for preset in ["tiny-hybrid", "tiny-masked"] {
        let mut cfg = Config::preset(preset).unwrap();
        let (len, prompt) = (3 * REVEAL_BLOCK as usize, 7);
        cfg.model.max_seq_len = len;
        let gpu = gpu();
        let model = Model::new(gpu, &cfg, 3).unwrap();
        let sampler = Sampler::new(gpu, &model, 1, len).unwrap();
        let known = Known {
            tokens: (0..len as u32).map(|i| i % 20).collect(),
            mask: (0..len).map(|i| i < prompt).collect(),
        };
        let mut frozen = Vec::new();
        let mut record = |s: StepOutput| {
            frozen.push(s.frozen);
            ControlFlow::Continue(())
        };
        let options = SampleOptions {
            steps: 12,
            order: RevealOrder::Blocks,
            ..SampleOptions::from_config(&cfg.diffusion)
        };
        let schedule = NoiseSchedule::new(&cfg.diffusion);
        pollster::block_on(sampler.run(gpu, &schedule, &options, Some(&known), Some(&mut record)))
            .unwrap();
        let block = |r: usize| (r - prompt) / REVEAL_BLOCK as usize;
        for (step, mask) in frozen.iter().enumerate() {
            let Some(last) = (prompt..len).rev().find(|&r| mask[r]) else {
                continue;
            };
            for r in (prompt..len).filter(|&r| block(r) < block(last)) {
                assert!(
                    mask[r],
                    "{preset} step {step}: position {last} frozen before {r} of an earlier block"
                );
            }
        }
        assert!(frozen[frozen.len() - 1].iter().all(|&f| f));
    }
}

/// Guidance w: the first step decodes (1 + w)·cond − w·uncond, cond the
/// logits of an unguided run given the prompt and uncond those of one given
/// nothing (at the first step every hidden position, the prompt's too, is
/// the starting noise or the mask); and the guided run still holds its
/// prompt and fills every position.
#[test]
fn guidance_decodes_the_prompts_logits_pushed_away_from_the_promptless_ones() {
    use samnet_core::conditioning::Known;
    use samnet_core::sample::{SampleOptions, Sampler, StepOutput};
    use std::ops::ControlFlow;
    for preset in ["tiny-hybrid", "tiny-masked"] {
        let cfg = Config::preset(preset).unwrap();
        let gpu = gpu();
        let model = Model::new(gpu, &cfg, 5).unwrap();
        let (len, prompt, w) = (13, 5, 1.5);
        let sampler = Sampler::new(gpu, &model, 2, len).unwrap();
        let known = Known {
            tokens: (0..2 * len as u32).map(|i| i * 7 % 50).collect(),
            mask: (0..2 * len).map(|i| i % len < prompt).collect(),
        };
        let schedule = NoiseSchedule::new(&cfg.diffusion);
        let first_logits = |known: Option<&Known>, guidance: f32| {
            let mut logits = Vec::new();
            let mut last = None;
            let mut record = |s: StepOutput| {
                if s.step == 0 {
                    logits = read(&sampler.graph().logits);
                }
                last = Some(s);
                ControlFlow::Continue(())
            };
            let options = SampleOptions {
                steps: 4,
                seed: 7,
                guidance,
                ..SampleOptions::from_config(&cfg.diffusion)
            };
            pollster::block_on(sampler.run(gpu, &schedule, &options, known, Some(&mut record)))
                .unwrap();
            (logits, last.unwrap())
        };
        let (cond, _) = first_logits(Some(&known), 0.0);
        let (uncond, _) = first_logits(None, 0.0);
        let (guided, last) = first_logits(Some(&known), w);
        let want: Vec<f64> = cond
            .iter()
            .zip(&uncond)
            .map(|(c, u)| (1.0 + w as f64) * c - w as f64 * u)
            .collect();
        assert!(
            cond.iter().zip(&uncond).any(|(c, u)| (c - u).abs() > 1e-3),
            "{preset}: the prompt changes the logits"
        );
        check(&format!("{preset}: guided logits"), &guided, &want, 1e-4);
        for (r, &m) in known.mask.iter().enumerate() {
            if m {
                assert_eq!(last.tokens[r], known.tokens[r], "{preset}: row {r}");
            }
        }
        assert!(
            last.frozen.iter().all(|&f| f),
            "{preset}: every position filled"
        );
    }
}

/// A denoising step with eta: x_next = a'·x0 + c·eps_hat + sigma·z, z the
/// step's fresh draw (the f64 reference's normals for its key and stream);
/// eta 0 is plain DDIM (z absent).
#[test]
fn stochastic_steps_add_the_schedules_sigma_of_fresh_noise() {
    use samnet_core::reference::random::randn;
    use samnet_core::sample::{STEP_NOISE_STREAM, SampleOptions, Sampler, StepOutput, step_key};
    use std::ops::ControlFlow;
    let cfg = Config::preset("tiny").unwrap();
    let gpu = gpu();
    let model = Model::new(gpu, &cfg, 3).unwrap();
    let (len, d) = (13, cfg.model.d_model);
    let sampler = Sampler::new(gpu, &model, 1, len).unwrap();
    let schedule = NoiseSchedule::new(&cfg.diffusion);
    for eta in [0.0f32, 0.6, 1.0] {
        let mut states = Vec::new();
        let mut record = |s: StepOutput| {
            let graph = sampler.graph();
            states.push((s.timestep, read(&graph.x_t), read(&graph.z0_pred)));
            ControlFlow::Continue(())
        };
        let options = SampleOptions {
            steps: 5,
            seed: 21,
            first_sequence: 0,
            clamp: false,
            soft_x0: false,
            temperature: 0.0,
            top_p: 1.0,
            eta,
            order: Default::default(),
            guidance: 0.0,
        };
        pollster::block_on(sampler.run(gpu, &schedule, &options, None, Some(&mut record))).unwrap();
        for i in 1..4 {
            // Step i takes states[i - 1]'s x to timestep states[i + 1].0.
            let x_t = &states[i - 1].1;
            let (t, x_next, z0) = (states[i].0, &states[i].1, &states[i].2);
            let st = schedule.step(t, states[i + 1].0, eta as f64);
            let z = randn(len * d, step_key(21, i), STEP_NOISE_STREAM, 1.0);
            let want: Vec<f64> = (0..len * d)
                .map(|j| {
                    let eps_hat = (x_t[j] - st.a_t * z0[j]) / st.s_t;
                    st.a_next * z0[j] + st.eps_next * eps_hat + st.sigma * z[j]
                })
                .collect();
            assert_eq!(st.sigma > 0.0, eta > 0.0);
            check(&format!("sampler step {i}, eta {eta}"), x_next, &want, 1e-4);
        }
    }
}

/// The gaussian levers while sampling, on a table narrower than d_model:
/// with an output prior each step's logits are (α·z0_pred + β·x_t)·Êᵀ,
/// β = w·S·a_t/s_t², and with `soft_x0` the step moves x_t by DDIM towards
/// x0_hat = S·softmax(logits / T)·Ê (T = 1 at temperature 0), both
/// recomputed in f64 from the step's own tensors.
#[test]
fn soft_steps_move_towards_the_expected_embedding_under_the_prior_logits() {
    use samnet_core::sample::{SampleOptions, Sampler, StepOutput};
    use std::ops::ControlFlow;
    let mut cfg = Config::preset("tiny").unwrap();
    let diff = &mut cfg.diffusion;
    (diff.embed_dim, diff.output_prior, diff.soft_x0) = (Some(12), 0.5, true);
    cfg.validate().unwrap();
    let gpu = gpu();
    let model = Model::new(gpu, &cfg, 3).unwrap();
    let (len, e, vocab) = (11, cfg.embed_dim(), cfg.model.vocab_size);
    let sampler = Sampler::new(gpu, &model, 1, len).unwrap();
    let schedule = NoiseSchedule::new(&cfg.diffusion);
    let (s_scale, alpha) = (
        cfg.diffusion.signal_scale as f64,
        (cfg.diffusion.logit_scale / cfg.diffusion.signal_scale) as f64,
    );
    for temperature in [0.0f32, 0.7] {
        let mut states = Vec::new();
        let mut record = |s: StepOutput| {
            let graph = sampler.graph();
            let tensors = [&graph.x_t, &graph.z0_pred, &graph.logits].map(read);
            states.push((s.timestep, tensors));
            ControlFlow::Continue(())
        };
        let options = SampleOptions {
            steps: 5,
            temperature,
            ..SampleOptions::from_config(&cfg.diffusion)
        };
        assert!(options.soft_x0 && !options.clamp);
        pollster::block_on(sampler.run(gpu, &schedule, &options, None, Some(&mut record))).unwrap();
        let e_hat = read(&sampler.graph().e_hat);
        let soft_t = if temperature > 0.0 {
            temperature as f64
        } else {
            1.0
        };
        for i in 1..4 {
            let x_t = &states[i - 1].1[0];
            let (t, [x_next, z0, logits]) = (states[i].0, &states[i].1);
            let st = schedule.step(t, states[i + 1].0, 0.0);
            let beta = 0.5 * s_scale * st.a_t / (st.s_t * st.s_t);
            let mut want_logits = vec![0.0; len * vocab];
            let mut x0_hat = vec![0.0; len * e];
            for r in 0..len {
                let u: Vec<f64> = (0..e)
                    .map(|j| alpha * z0[r * e + j] + beta * x_t[r * e + j])
                    .collect();
                for v in 0..vocab {
                    want_logits[r * vocab + v] = dot(&u, &e_hat[v * e..(v + 1) * e]);
                }
                let row = &logits[r * vocab..(r + 1) * vocab];
                let top = row.iter().cloned().fold(f64::MIN, f64::max);
                let w: Vec<f64> = row.iter().map(|l| ((l - top) / soft_t).exp()).collect();
                let total: f64 = w.iter().sum();
                for (v, wv) in w.iter().enumerate() {
                    for j in 0..e {
                        x0_hat[r * e + j] += s_scale * wv / total * e_hat[v * e + j];
                    }
                }
            }
            check(
                &format!("prior logits, step {i}"),
                logits,
                &want_logits,
                1e-4,
            );
            let want: Vec<f64> = (0..len * e)
                .map(|j| {
                    let eps_hat = (x_t[j] - st.a_t * x0_hat[j]) / st.s_t;
                    st.a_next * x0_hat[j] + st.eps_next * eps_hat
                })
                .collect();
            check(
                &format!("soft step {i}, T {temperature}"),
                x_next,
                &want,
                1e-4,
            );
        }
    }
}
