//! TD3 (Fujimoto et al., 2018) with separate actor and critic CNN encoders, as in the seed.
//!
//! Four optimizers, as the seed has them: actor CNN, actor head, critic CNN, critic heads (both Q
//! heads in one module, one optimizer, as sfujim/TD3 does). Targets for every network, CNNs included,
//! are Polyak-averaged on the delayed steps only.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::adam::Adam;
use super::nets::{
    clip_engages, clip_grads, grad_norm, grad_norms, param_norm, Encoder, EncoderShape, Mlp,
};
use super::replay::Batch;
use crate::config::{ActorEncoder, AgentConfig};
use crate::torch_ext;

/// One network group: its variables and, for online networks, an optimizer.
struct Group {
    vs: nn::VarStore,
    /// Variables sorted by name, so online and target groups pair up by position.
    vars: Vec<Tensor>,
    names: Vec<String>,
}

impl Group {
    fn new(device: Device) -> Group {
        Group {
            vs: nn::VarStore::new(device),
            vars: Vec::new(),
            names: Vec::new(),
        }
    }
    fn seal(&mut self) {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        self.names = v.iter().map(|(n, _)| n.clone()).collect();
        self.vars = v.into_iter().map(|(_, t)| t).collect();
    }
}

struct Nets {
    actor_cnn: Option<Encoder>,
    actor_head: Mlp,
    critic_cnn: Option<Encoder>,
    q1: Mlp,
    q2: Mlp,
}

/// Everything that has variables, built twice (online and target) with the same names.
struct Stores {
    actor_cnn: Option<Group>,
    actor_head: Group,
    critic_cnn: Option<Group>,
    critic_head: Group,
}

impl Stores {
    fn groups(&self) -> impl Iterator<Item = &Group> {
        [
            self.actor_cnn.as_ref(),
            Some(&self.actor_head),
            self.critic_cnn.as_ref(),
            Some(&self.critic_head),
        ]
        .into_iter()
        .flatten()
    }
}

fn build(cfg: &AgentConfig, obs_shape: &[i64], act_dim: i64, device: Device) -> (Nets, Stores) {
    let pixels = obs_shape.len() == 3;
    let cnn = &cfg.networks.cnn;
    let shape = EncoderShape {
        in_channels: obs_shape[0],
        image_size: *obs_shape.last().unwrap_or(&1),
        channels: cnn.channels.clone(),
        kernels: cnn.kernels.clone(),
        strides: cnn.strides.clone(),
        feature_dim: cnn.feature_dim,
    };
    let own_actor_cnn = pixels && cnn.actor_encoder == ActorEncoder::Own;
    let mut critic_cnn_g = pixels.then(|| Group::new(device));
    let critic_cnn = critic_cnn_g
        .as_ref()
        .map(|g| Encoder::new(&(g.vs.root() / "critic_cnn"), &shape));
    let mut actor_cnn_g = own_actor_cnn.then(|| Group::new(device));
    let actor_cnn = actor_cnn_g
        .as_ref()
        .map(|g| Encoder::new(&(g.vs.root() / "actor_cnn"), &shape));
    let feat = if pixels {
        cnn.feature_dim
    } else {
        obs_shape[0]
    };
    let mut actor_head_g = Group::new(device);
    let actor_head = Mlp::new(
        &(actor_head_g.vs.root() / "actor"),
        feat,
        &cfg.networks.actor.hidden,
        act_dim,
    );
    let mut critic_head_g = Group::new(device);
    let q1 = Mlp::new(
        &(critic_head_g.vs.root() / "q1"),
        feat + act_dim,
        &cfg.networks.critic.hidden,
        1,
    );
    let q2 = Mlp::new(
        &(critic_head_g.vs.root() / "q2"),
        feat + act_dim,
        &cfg.networks.critic.hidden,
        1,
    );
    for g in [
        actor_cnn_g.as_mut(),
        critic_cnn_g.as_mut(),
        Some(&mut actor_head_g),
        Some(&mut critic_head_g),
    ]
    .into_iter()
    .flatten()
    {
        g.seal();
    }
    (
        Nets {
            actor_cnn,
            actor_head,
            critic_cnn,
            q1,
            q2,
        },
        Stores {
            actor_cnn: actor_cnn_g,
            actor_head: actor_head_g,
            critic_cnn: critic_cnn_g,
            critic_head: critic_head_g,
        },
    )
}

/// Scalars of one update, still on the device. Read them together with [`UpdateStats::to_host`].
pub struct UpdateStats {
    /// [critic_cnn_gn, critic_head_gn, q_mean, q_abs_max, target_q_mean, critic_loss, actor_cnn_gn,
    ///  actor_head_gn, actor_loss, params_norm]; actor entries are NaN-free zeros when the actor did not update.
    values: Tensor,
    /// Per-variable gradient norms in [`Td3::layer_names`] order (actor entries 0 without an actor update).
    layers: Tensor,
    /// Whether the delayed actor update ran on this step.
    pub actor_updated: bool,
    /// `training.actor_cnn_grad_clip.max_norm` and `training.critic_cnn_grad_clip.max_norm`,
    /// each `None` where that CNN does not exist (it has nothing to clip).
    clips: (Option<f64>, Option<f64>),
}

/// Host copy of one update's scalars. `None` where not measured on this step.
#[derive(Debug, Clone, Default)]
pub struct StepScalars {
    pub critic_cnn_gn: Option<f64>,
    pub critic_head_gn: f64,
    pub q_mean: f64,
    pub q_abs_max: f64,
    pub target_q_mean: f64,
    pub critic_loss: f64,
    pub actor_cnn_gn: Option<f64>,
    pub actor_head_gn: Option<f64>,
    pub actor_loss: Option<f64>,
    /// Whether the critic CNN's clip engaged (its pre-clip norm above `max_norm`); `None` when
    /// that clip is off or there is no critic CNN.
    pub critic_cnn_clipped: Option<bool>,
    /// The same for the actor CNN, on actor updates only.
    pub actor_cnn_clipped: Option<bool>,
    /// Count of non-finite values among losses, gradient norms and the parameter norm.
    pub nonfinite: u64,
    /// Per-variable gradient norms before clipping, in [`Td3::layer_names`] order.
    pub layers: Vec<f64>,
}

/// The TD3 agent.
pub struct Td3 {
    cfg: AgentConfig,
    device: Device,
    nets: Nets,
    stores: Stores,
    targets: (Nets, Stores),
    opt_actor_cnn: Option<Adam>,
    opt_actor_head: Adam,
    opt_critic_cnn: Option<Adam>,
    opt_critic_head: Adam,
    /// Gradient updates done so far.
    pub total_it: u64,
    /// Test hook: multiply the critic loss by NaN at this update (1-based).
    pub nan_at_step: Option<u64>,
}

impl Td3 {
    /// Builds online and target networks and the four optimizers with the resolved learning rates.
    pub fn new(
        cfg: &AgentConfig,
        obs_shape: &[i64],
        act_dim: i64,
        device: Device,
    ) -> Result<Td3, tch::TchError> {
        let (nets, stores) = build(cfg, obs_shape, act_dim, device);
        let (tnets, mut tstores) = build(cfg, obs_shape, act_dim, device);
        copy_group(&mut tstores.actor_cnn, &stores.actor_cnn)?;
        copy_group(&mut tstores.critic_cnn, &stores.critic_cnn)?;
        tstores.actor_head.vs.copy(&stores.actor_head.vs)?;
        tstores.critic_head.vs.copy(&stores.critic_head.vs)?;
        // Targets never get gradients.
        for g in [tstores.actor_cnn.as_mut(), tstores.critic_cnn.as_mut()]
            .into_iter()
            .flatten()
        {
            g.vs.freeze();
        }
        tstores.actor_head.vs.freeze();
        tstores.critic_head.vs.freeze();
        let lrs = cfg.resolved_lrs();
        let adam = |g: &Group, lr: f64| Adam::new(&g.vars, lr);
        let opt_actor_cnn = stores.actor_cnn.as_ref().map(|g| adam(g, lrs.actor_cnn.lr));
        let opt_critic_cnn = stores
            .critic_cnn
            .as_ref()
            .map(|g| adam(g, lrs.critic_cnn.lr));
        let opt_actor_head = adam(&stores.actor_head, lrs.actor_head.lr);
        let opt_critic_head = adam(&stores.critic_head, lrs.critic_head.lr);
        Ok(Td3 {
            cfg: cfg.clone(),
            device,
            nets,
            stores,
            targets: (tnets, tstores),
            opt_actor_cnn,
            opt_actor_head,
            opt_critic_cnn,
            opt_critic_head,
            total_it: 0,
            nan_at_step: cfg.debug.nan_at_step,
        })
    }

    /// Online and target networks as named CPU tensors for `model.safetensors`: online variables
    /// under their VarStore names (`actor_cnn.conv0.weight`, `q1.fc0.bias`, ...), targets under
    /// `target.` + the same name.
    pub fn network_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (prefix, s) in [("", &self.stores), ("target.", &self.targets.1)] {
            for g in s.groups() {
                for (n, v) in g.names.iter().zip(&g.vars) {
                    out.push((format!("{prefix}{n}"), v.detach().to_device(Device::Cpu)));
                }
            }
        }
        out
    }

    /// Optimizer states as named CPU tensors (`adam.<group>.m.<i>`, `.v.<i>`, `.step`).
    pub fn optimizer_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (name, o) in self.optimizers() {
            let st = o.state(&format!("adam.{name}"));
            out.extend(st.into_iter().map(|(n, t)| (n, t.to_device(Device::Cpu))));
        }
        out
    }

    /// Restores [`Td3::network_tensors`] and [`Td3::optimizer_tensors`] (by name, checking
    /// shapes) and the update counter.
    pub fn load_tensors(
        &mut self,
        get: &dyn Fn(&str) -> Option<Tensor>,
        total_it: u64,
    ) -> Result<(), String> {
        for (prefix, s) in [("", &self.stores), ("target.", &self.targets.1)] {
            for g in s.groups() {
                for (n, v) in g.names.iter().zip(&g.vars) {
                    let name = format!("{prefix}{n}");
                    let t = get(&name).ok_or_else(|| format!("missing tensor `{name}`"))?;
                    if t.size() != v.size() {
                        return Err(format!(
                            "tensor `{name}` has shape {:?}, expected {:?}",
                            t.size(),
                            v.size()
                        ));
                    }
                    let mut v = v.shallow_clone();
                    let t = t.to_kind(v.kind()).to_device(v.device());
                    tch::no_grad(|| v.copy_(&t));
                }
            }
        }
        let opts = [
            ("actor_cnn", self.opt_actor_cnn.as_mut()),
            ("actor_head", Some(&mut self.opt_actor_head)),
            ("critic_cnn", self.opt_critic_cnn.as_mut()),
            ("critic_head", Some(&mut self.opt_critic_head)),
        ];
        for (name, o) in opts {
            if let Some(o) = o {
                o.load_state(&format!("adam.{name}"), get)?;
            }
        }
        self.total_it = total_it;
        Ok(())
    }

    fn optimizers(&self) -> Vec<(&'static str, &Adam)> {
        [
            ("actor_cnn", self.opt_actor_cnn.as_ref()),
            ("actor_head", Some(&self.opt_actor_head)),
            ("critic_cnn", self.opt_critic_cnn.as_ref()),
            ("critic_head", Some(&self.opt_critic_head)),
        ]
        .into_iter()
        .filter_map(|(n, o)| o.map(|o| (n, o)))
        .collect()
    }

    /// The device the networks live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Deterministic action in [-1, 1] for one observation tensor `[1, ...]`.
    pub fn act(&self, obs: &Tensor) -> Vec<f32> {
        tch::no_grad(|| {
            let a = actor_forward(&self.nets, obs)
                .to_device(Device::Cpu)
                .view([-1]);
            Vec::<f32>::try_from(a).unwrap_or_default()
        })
    }

    /// One TD3 gradient update: the critic step, then on every `policy_delay`-th update the actor
    /// step and the Polyak averaging of the targets. Returns the step's scalars on the device and
    /// whether every loss and gradient was finite. A side whose loss or gradients are not finite
    /// applies nothing, and a non-finite critic skips the actor step too.
    pub fn update(&mut self, b: &Batch) -> (UpdateStats, bool) {
        self.total_it += 1;
        let critic = self.critic_backward(b);
        // One host sync per step: the finiteness check must happen before the optimizer applies anything.
        let critic_ok = critic.grads.all_finite(&critic.loss);
        let mut vals = vec![
            critic.grads.cnn_or_zero(),
            critic.grads.head.shallow_clone(),
            critic.q_mean,
            critic.q_abs_max,
            critic.target_q_mean,
            critic.loss,
        ];
        if !critic_ok {
            // No actor step, no parameter norm: zeros in their places.
            vals.extend([self.zero(), self.zero(), self.zero(), self.zero()]);
            let layers = Tensor::cat(&[self.actor_zeros(), critic.grads.layers], 0);
            return (self.stats(&vals, layers, false), false);
        }
        apply(
            self.cfg.training.critic_cnn_grad_clip.max_norm,
            self.stores.critic_cnn.as_ref(),
            critic.grads.cnn.as_ref(),
            self.opt_critic_cnn.as_mut(),
            &mut self.opt_critic_head,
        );

        let actor_updated = self.total_it.is_multiple_of(self.cfg.training.policy_delay);
        let (actor_layers, actor_ok) = if actor_updated {
            let actor = self.actor_backward(b);
            let ok = actor.grads.all_finite(&actor.loss);
            vals.extend([
                actor.grads.cnn_or_zero(),
                actor.grads.head.shallow_clone(),
                actor.loss,
            ]);
            if ok {
                apply(
                    self.cfg.training.actor_cnn_grad_clip.max_norm,
                    self.stores.actor_cnn.as_ref(),
                    actor.grads.cnn.as_ref(),
                    self.opt_actor_cnn.as_mut(),
                    &mut self.opt_actor_head,
                );
                self.soft_update();
            }
            (actor.grads.layers, ok)
        } else {
            vals.extend([self.zero(), self.zero(), self.zero()]);
            (self.actor_zeros(), true)
        };
        vals.push(self.params_norm());
        let layers = Tensor::cat(&[actor_layers, critic.grads.layers], 0);
        (self.stats(&vals, layers, actor_updated), actor_ok)
    }

    /// One update's [`UpdateStats`] from its scalars (in the order [`UpdateStats::values`] lists).
    fn stats(&self, vals: &[Tensor], layers: Tensor, actor_updated: bool) -> UpdateStats {
        let t = &self.cfg.training;
        UpdateStats {
            values: Tensor::stack(vals, 0),
            layers,
            actor_updated,
            clips: (
                t.actor_cnn_grad_clip
                    .max_norm
                    .filter(|_| self.stores.actor_cnn.is_some()),
                t.critic_cnn_grad_clip
                    .max_norm
                    .filter(|_| self.stores.critic_cnn.is_some()),
            ),
        }
    }

    /// The TD3 regression target (Fujimoto et al., 2018, with target policy smoothing), without
    /// gradients: `r + γ·(1 − done)·min(Q1', Q2')(s', a')` with the smoothed target action
    /// `a' = clamp(π'(s') + clamp(σ·ε, −c, c), −1, 1)`, where ε are the batch's noise draws, σ is
    /// `policy_noise` and c `noise_clip`. [`Td3::update`] and [`Td3::critic_loss`] both use it.
    fn td3_target(&self, b: &Batch) -> Tensor {
        let t = &self.cfg.training;
        let target = &self.targets.0;
        tch::no_grad(|| {
            let noise = (&b.noise * t.policy_noise).clamp(-t.noise_clip, t.noise_clip);
            let next_a = (actor_forward(target, &b.next_obs) + noise).clamp(-1.0, 1.0);
            let (q1, q2) = twin_q(target, &b.next_obs, &next_a);
            &b.rew + &b.not_done * t.discount * q1.minimum(&q2)
        })
    }

    /// The critic's forward and backward on `b`, with its gradient norms read before any clipping.
    fn critic_backward(&mut self, b: &Batch) -> CriticStep {
        let target_q = self.td3_target(b);
        let (q1, q2) = twin_q(&self.nets, &b.obs, &b.act);
        let mut loss = twin_mse(&q1, &q2, &target_q);
        if self.nan_at_step == Some(self.total_it) {
            loss *= f64::NAN;
        }
        if let Some(o) = self.opt_critic_cnn.as_mut() {
            o.zero_grad();
        }
        self.opt_critic_head.zero_grad();
        loss.backward();
        let grads = SideGrads::of(self.stores.critic_cnn.as_ref(), &self.stores.critic_head);
        let (q_mean, q_abs_max, target_q_mean) = tch::no_grad(|| {
            let q1d = q1.detach();
            (
                q1d.mean(Kind::Float),
                q1d.abs().max().maximum(&q2.detach().abs().max()),
                target_q.mean(Kind::Float),
            )
        });
        CriticStep {
            loss: loss.detach(),
            grads,
            q_mean,
            q_abs_max,
            target_q_mean,
        }
    }

    /// The actor's forward and backward on `b` (`−Q1(s, π(s))`, or its normalised form), with its
    /// gradient norms read before any clipping. Leaves no gradient in the critic.
    fn actor_backward(&mut self, b: &Batch) -> ActorStep {
        // Freeze the critic so the actor loss leaves no gradients in it that a later step
        // could apply, and spends no compute on them (as Spinning Up does).
        self.stores.critic_head.vs.freeze();
        let a = actor_forward(&self.nets, &b.obs);
        // The gradient only needs the action path: critic features under no_grad.
        let f = tch::no_grad(|| critic_features(&self.nets, &b.obs));
        let q = self.nets.q1.forward(&Tensor::cat(&[f, a], 1));
        let loss = if self.cfg.training.q_normalization {
            -normalized_q(&q).mean(Kind::Float)
        } else {
            -q.mean(Kind::Float)
        };
        if let Some(o) = self.opt_actor_cnn.as_mut() {
            o.zero_grad();
        }
        self.opt_actor_head.zero_grad();
        loss.backward();
        self.stores.critic_head.vs.unfreeze();
        ActorStep {
            loss: loss.detach(),
            grads: SideGrads::of(self.stores.actor_cnn.as_ref(), &self.stores.actor_head),
        }
    }

    /// A scalar zero on the training device.
    fn zero(&self) -> Tensor {
        Tensor::zeros([], (Kind::Float, self.device))
    }

    /// Per-variable gradient norms of the actor when it did not update: zeros.
    fn actor_zeros(&self) -> Tensor {
        let n = self
            .stores
            .actor_cnn
            .as_ref()
            .map(|g| g.vars.len())
            .unwrap_or(0)
            + self.stores.actor_head.vars.len();
        Tensor::zeros([n as i64], (Kind::Float, self.device))
    }

    fn params_norm(&self) -> Tensor {
        let s = &self.stores;
        let mut vars: Vec<Tensor> = Vec::new();
        for g in [
            s.actor_cnn.as_ref(),
            s.critic_cnn.as_ref(),
            Some(&s.actor_head),
            Some(&s.critic_head),
        ]
        .into_iter()
        .flatten()
        {
            vars.extend(g.vars.iter().map(|v| v.shallow_clone()));
        }
        param_norm(&vars)
    }

    fn soft_update(&mut self) {
        let tau = self.cfg.training.tau;
        let (_, ts) = &mut self.targets;
        let s = &self.stores;
        tch::no_grad(|| {
            for (tg, g) in [
                (ts.actor_cnn.as_mut(), s.actor_cnn.as_ref()),
                (ts.critic_cnn.as_mut(), s.critic_cnn.as_ref()),
                (Some(&mut ts.actor_head), Some(&s.actor_head)),
                (Some(&mut ts.critic_head), Some(&s.critic_head)),
            ] {
                if let (Some(tg), Some(g)) = (tg, g) {
                    // θ' ← τθ + (1−τ)θ'  ==  θ'.lerp_(θ, τ), one call per group. Variables are
                    // sorted by name in both groups, so they pair up by position.
                    torch_ext::foreach_lerp(
                        &tg.vars.iter().collect::<Vec<_>>(),
                        &g.vars.iter().collect::<Vec<_>>(),
                        tau,
                    );
                }
            }
        });
    }

    /// Names of the per-variable gradient norms in [`StepScalars::layers`], e.g. `actor_cnn/conv0.weight`.
    pub fn layer_names(&self) -> Vec<String> {
        let s = &self.stores;
        [
            s.actor_cnn.as_ref(),
            Some(&s.actor_head),
            s.critic_cnn.as_ref(),
            Some(&s.critic_head),
        ]
        .into_iter()
        .flatten()
        .flat_map(|g| g.names.iter().cloned())
        .collect()
    }

    /// The critic's current gradients (for tests: the actor step must leave none behind).
    pub fn critic_grad_norm(&self) -> f64 {
        let mut vars: Vec<Tensor> = self
            .stores
            .critic_head
            .vars
            .iter()
            .map(|v| v.shallow_clone())
            .collect();
        if let Some(g) = &self.stores.critic_cnn {
            vars.extend(g.vars.iter().map(|v| v.shallow_clone()));
        }
        grad_norm(&vars).double_value(&[])
    }

    /// The critic loss [`Td3::update`] would minimise on `b` (the same TD3 target, the batch's
    /// smoothing noise included), without updating anything.
    pub fn critic_loss(&self, b: &Batch) -> f64 {
        tch::no_grad(|| {
            let target_q = self.td3_target(b);
            let (q1, q2) = twin_q(&self.nets, &b.obs, &b.act);
            twin_mse(&q1, &q2, &target_q).double_value(&[])
        })
    }
}

impl UpdateStats {
    /// Copies the step's scalars to the host (one transfer).
    pub fn to_host(&self, pixels: bool) -> StepScalars {
        let all = Tensor::cat(&[self.values.view([-1]), self.layers.view([-1])], 0);
        let all: Vec<f64> =
            Vec::try_from(all.to_kind(Kind::Double).to_device(Device::Cpu)).unwrap_or_default();
        let n = (self.values.numel()).min(all.len());
        let (v, layers) = all.split_at(n);
        let g = |i: usize| v.get(i).copied().unwrap_or(f64::NAN);
        let nonfinite = v.iter().filter(|x| !x.is_finite()).count() as u64;
        let critic_cnn_gn = pixels.then(|| g(0));
        let actor_cnn_gn = (self.actor_updated && pixels).then(|| g(6));
        let engaged = |gn: Option<f64>, max: Option<f64>| Some(clip_engages(gn?, max?));
        StepScalars {
            critic_cnn_gn,
            critic_head_gn: g(1),
            q_mean: g(2),
            q_abs_max: g(3),
            target_q_mean: g(4),
            critic_loss: g(5),
            actor_cnn_gn,
            actor_head_gn: self.actor_updated.then(|| g(7)),
            actor_loss: self.actor_updated.then(|| g(8)),
            critic_cnn_clipped: engaged(critic_cnn_gn, self.clips.1),
            actor_cnn_clipped: engaged(actor_cnn_gn, self.clips.0),
            nonfinite,
            layers: layers.to_vec(),
        }
    }
}

/// The critic step's results, still on the device.
struct CriticStep {
    /// The loss, detached (multiplied by NaN at `debug.nan_at_step`).
    loss: Tensor,
    grads: SideGrads,
    q_mean: Tensor,
    q_abs_max: Tensor,
    target_q_mean: Tensor,
}

/// The actor step's results, still on the device.
struct ActorStep {
    /// The loss, detached.
    loss: Tensor,
    grads: SideGrads,
}

/// One side's (actor's or critic's) gradient norms, read right after its backward and before any
/// clipping.
struct SideGrads {
    /// Per-variable norms, the CNN's then the head's, in [`Td3::layer_names`] order.
    layers: Tensor,
    /// The CNN's total norm (pixels only).
    cnn: Option<Tensor>,
    /// The head's total norm.
    head: Tensor,
}

impl SideGrads {
    fn of(cnn: Option<&Group>, head: &Group) -> SideGrads {
        let cnn_per = cnn.map(|g| grad_norms(&g.vars));
        let head_per = grad_norms(&head.vars);
        let cnn_gn = cnn_per.as_ref().map(|x| x.norm());
        let head_gn = head_per.norm();
        let mut per: Vec<Tensor> = cnn_per.into_iter().collect();
        per.push(head_per);
        SideGrads {
            layers: Tensor::cat(&per, 0),
            cnn: cnn_gn,
            head: head_gn,
        }
    }

    /// The CNN's norm, or a zero on the same device where there is no CNN.
    fn cnn_or_zero(&self) -> Tensor {
        match &self.cnn {
            Some(x) => x.shallow_clone(),
            None => Tensor::zeros([], (Kind::Float, self.head.device())),
        }
    }

    /// Whether `loss` and both norms are finite: one host sync.
    fn all_finite(&self, loss: &Tensor) -> bool {
        let check = Tensor::stack(
            &[
                loss.shallow_clone(),
                self.cnn_or_zero(),
                self.head.shallow_clone(),
            ],
            0,
        )
        .isfinite()
        .all();
        bool::try_from(&check).unwrap_or(false)
    }
}

/// Both Q heads of `n` on (`obs`, `act`), through `n`'s critic features.
fn twin_q(n: &Nets, obs: &Tensor, act: &Tensor) -> (Tensor, Tensor) {
    let sa = Tensor::cat(&[critic_features(n, obs), act.shallow_clone()], 1);
    (n.q1.forward(&sa), n.q2.forward(&sa))
}

/// The critic loss: the sum of both heads' mean squared errors against the target.
fn twin_mse(q1: &Tensor, q2: &Tensor, target: &Tensor) -> Tensor {
    q1.mse_loss(target, tch::Reduction::Mean) + q2.mse_loss(target, tch::Reduction::Mean)
}

/// Solution C: `(q − mean) / (std + 1e-8)`, as in the seed's rollback plan, with the batch's mean
/// and std taken as constants (detached). Without that, the actor loss `−mean(normalized_q)` is
/// the mean of a centred batch, identically 0, and its gradient is only float rounding: the actor
/// stops learning (measured: actor CNN gradient 1e-9 to 1e-11). Detached, the loss is Q's own
/// gradient divided by its spread: the same direction at any Q scale.
pub fn normalized_q(q: &Tensor) -> Tensor {
    (q - q.mean(Kind::Float).detach()) / (q.std(true).detach() + 1e-8)
}

/// Applies one side's update: clips the CNN's gradients when `max_norm` is set (given the pre-clip
/// norm already measured), then steps the CNN's and the head's optimizers.
fn apply(
    max_norm: Option<f64>,
    cnn: Option<&Group>,
    cnn_norm: Option<&Tensor>,
    cnn_opt: Option<&mut Adam>,
    head_opt: &mut Adam,
) {
    if let (Some(max), Some(g), Some(gn)) = (max_norm, cnn, cnn_norm) {
        clip_grads(&g.vars, gn, max);
    }
    if let Some(o) = cnn_opt {
        o.step();
    }
    head_opt.step();
}

fn copy_group(dst: &mut Option<Group>, src: &Option<Group>) -> Result<(), tch::TchError> {
    if let (Some(d), Some(s)) = (dst.as_mut(), src.as_ref()) {
        d.vs.copy(&s.vs)?;
    }
    Ok(())
}

fn critic_features(n: &Nets, obs: &Tensor) -> Tensor {
    match &n.critic_cnn {
        Some(e) => e.forward(obs),
        None => obs.shallow_clone(),
    }
}

fn actor_forward(n: &Nets, obs: &Tensor) -> Tensor {
    let f = match (&n.actor_cnn, &n.critic_cnn) {
        (Some(e), _) => e.forward(obs),
        // shared_detached: the actor reads the critic encoder's features without training it.
        (None, Some(c)) => c.forward(obs).detach(),
        (None, None) => obs.shallow_clone(),
    };
    n.actor_head.forward(&f).tanh()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_state_agent() -> Td3 {
        let mut cfg = AgentConfig::default();
        cfg.networks.actor.hidden = vec![16];
        cfg.networks.critic.hidden = vec![16];
        Td3::new(&cfg, &[3], 2, Device::Cpu).unwrap()
    }

    /// Four transitions with the same smoothing-noise draw `eps` in every entry.
    fn batch(eps: f64, not_done: f64) -> Batch {
        let opts = (Kind::Float, Device::Cpu);
        tch::manual_seed(7);
        Batch {
            obs: Tensor::randn([4, 3], opts),
            act: Tensor::rand([4, 2], opts) * 2.0 - 1.0,
            rew: Tensor::randn([4, 1], opts),
            next_obs: Tensor::randn([4, 3], opts),
            not_done: Tensor::full([4, 1], not_done, opts),
            noise: Tensor::full([4, 2], eps, opts),
        }
    }

    /// The same transitions with another smoothing draw. Built from `b` rather than drawn again:
    /// tests run in parallel on libtorch's one global generator, so a second `batch()` could
    /// draw other observations when another test draws in between.
    fn with_noise(b: &Batch, eps: f64) -> Batch {
        Batch {
            obs: b.obs.shallow_clone(),
            act: b.act.shallow_clone(),
            rew: b.rew.shallow_clone(),
            next_obs: b.next_obs.shallow_clone(),
            not_done: b.not_done.shallow_clone(),
            noise: b.noise.full_like(eps),
        }
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn the_target_uses_the_smoothed_target_action() {
        tch::manual_seed(0);
        let agent = small_state_agent();
        let t = &agent.cfg.training;
        assert_eq!((t.policy_noise, t.noise_clip), (0.2, 0.5));
        // Draws of 3σ and 100σ both clip to noise_clip: the same target.
        let b = batch(3.0, 1.0);
        let y = agent.td3_target(&b);
        assert_eq!(max_diff(&y, &agent.td3_target(&with_noise(&b, 100.0))), 0.0);
        // It is r + γ·min(Q1', Q2') at the target action shifted by the clip, clamped to [−1, 1].
        let target = &agent.targets.0;
        let a = (actor_forward(target, &b.next_obs) + 0.5).clamp(-1.0, 1.0);
        let (q1, q2) = twin_q(target, &b.next_obs, &a);
        let want = &b.rew + q1.minimum(&q2) * t.discount;
        assert!(max_diff(&y, &want) < 1e-6, "{y} vs {want}");
        // Without the noise the target is another one: the smoothing is not a no-op here.
        assert!(max_diff(&y, &agent.td3_target(&with_noise(&b, 0.0))) > 1e-4);
    }

    #[test]
    fn a_terminal_transition_targets_its_reward() {
        let agent = small_state_agent();
        let b = batch(1.0, 0.0);
        assert_eq!(max_diff(&agent.td3_target(&b), &b.rew), 0.0);
    }

    #[test]
    fn the_critic_loss_is_what_the_update_reports() {
        tch::manual_seed(1);
        let mut agent = small_state_agent();
        let b = batch(1.5, 1.0);
        let before = agent.critic_loss(&b);
        let (stats, ok) = agent.update(&b);
        assert!(ok);
        let reported = stats.to_host(false).critic_loss;
        assert!(
            (before - reported).abs() <= 1e-6 * before.abs().max(1.0),
            "critic_loss {before} vs the update's {reported}"
        );
    }
}
