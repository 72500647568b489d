//! Replay buffer. Pixel observations are stored as u8 frames, each once (a [`FrameStore`]), and
//! converted to float on the device, only for the sampled batch.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tch::{Device, Kind, Tensor};

use super::env::Observation;
use super::frame_store::{FrameBatch, FrameStore, FrameStoreState};

/// One sampled batch, on the training device. Pixels are float in [0, 1].
pub struct Batch {
    pub obs: Tensor,
    pub act: Tensor,
    pub rew: Tensor,
    pub next_obs: Tensor,
    /// 1 − terminated. Time-limit truncation is *not* terminal, so it stays 1 there.
    pub not_done: Tensor,
    /// Standard-normal draws `[batch, act_dim]` for TD3's target policy smoothing, drawn from the
    /// run's host RNG (not torch's global generator) so a checkpoint can hold all RNG state.
    pub noise: Tensor,
}

/// Pixel transitions live in a [`FrameStore`] (each frame once); state transitions as copies.
enum Store {
    Pixels {
        store: FrameStore,
        /// Reused across `sample` calls of the same batch size.
        batch: Option<FrameBatch>,
        /// Transitions whose `next_obs` was not `obs` shifted by one frame, which the frame
        /// store cannot hold; they are dropped (only a failed env produces them).
        dropped: u64,
    },
    State(StateRing),
}

/// A ring of copied state transitions; grows with use up to `capacity`.
struct StateRing {
    len: usize,
    pos: usize,
    obs: Vec<f32>,
    next: Vec<f32>,
    scratch: Vec<f32>,
    act: Vec<f32>,
    rew: Vec<f32>,
    not_done: Vec<f32>,
    idx: Vec<usize>,
}

/// A ring buffer of transitions; memory grows with use up to `capacity`.
///
/// Pixel observations (`[k, H, W]` u8 stacks of `k` frames, oldest first) are kept in a
/// [`FrameStore`]: each frame is stored once, so a transition costs about one frame plus a
/// fixed part instead of `2k` frames. The frame store may hold fewer than `capacity`
/// transitions when episodes are very short (see its docs). State observations are copied.
pub struct Replay {
    capacity: usize,
    /// Elements per observation (C·H·W or the state dimension).
    obs_len: usize,
    /// Observation shape without the batch dimension.
    obs_shape: Vec<i64>,
    act_dim: usize,
    store: Store,
}

impl Replay {
    /// An empty buffer for observations of `obs_shape` (`[C, H, W]` for pixels, `[D]` for states).
    /// For pixels the `C` channels are `C` stacked `H×W` frames.
    ///
    /// # Panics
    /// If `capacity` is zero, or pixel observations are not `[C, H, W]` with positive sides.
    pub fn new(capacity: usize, obs_shape: Vec<i64>, pixels: bool, act_dim: usize) -> Replay {
        Self::try_new(capacity, obs_shape, pixels, act_dim).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Replay::new`], with an error when a pixel store's memory can't be reserved (see
    /// [`FrameStore::try_new`]).
    pub fn try_new(
        capacity: usize,
        obs_shape: Vec<i64>,
        pixels: bool,
        act_dim: usize,
    ) -> Result<Replay, String> {
        assert!(capacity > 0, "replay capacity must be > 0");
        let obs_len = obs_shape.iter().product::<i64>() as usize;
        let store = if pixels {
            let [k, h, w] = obs_shape[..] else {
                panic!("pixel observations must be [C, H, W], got {obs_shape:?}");
            };
            assert!(k > 0 && h > 0 && w > 0, "empty pixel observations");
            Store::Pixels {
                store: FrameStore::try_new(
                    capacity,
                    [h as usize, w as usize],
                    k as usize,
                    act_dim,
                )?,
                batch: None,
                dropped: 0,
            }
        } else {
            Store::State(StateRing {
                len: 0,
                pos: 0,
                obs: Vec::new(),
                next: Vec::new(),
                scratch: Vec::new(),
                act: Vec::new(),
                rew: Vec::new(),
                not_done: Vec::new(),
                idx: Vec::new(),
            })
        };
        Ok(Replay {
            capacity,
            obs_len,
            obs_shape,
            act_dim,
            store,
        })
    }

    /// Transitions stored.
    pub fn len(&self) -> usize {
        match &self.store {
            Store::Pixels { store, .. } => store.len(),
            Store::State(r) => r.len,
        }
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of transition data held now (observations, actions, rewards, flags; for pixels the
    /// frame store's own count), not counting reserved but unused capacity or sampling scratch.
    pub fn bytes_used(&self) -> usize {
        match &self.store {
            Store::Pixels { store, .. } => store.bytes_used(),
            Store::State(r) => 4 * (r.obs.len() + r.next.len() + r.act.len() + 2 * r.rew.len()),
        }
    }

    /// Pixel transitions dropped because `next_obs` was not `obs` shifted by one frame (only an
    /// env that failed mid-step, returning a blank observation, does that). Always 0 for states.
    pub fn dropped(&self) -> u64 {
        match &self.store {
            Store::Pixels { dropped, .. } => *dropped,
            Store::State(_) => 0,
        }
    }

    /// Stores one transition, overwriting the oldest when full.
    ///
    /// Pixels: `next` must be `obs` shifted by one frame (a frame stack); a pair that is not is
    /// dropped and counted in [`Replay::dropped`].
    pub fn push(
        &mut self,
        obs: &Observation,
        act: &[f32],
        rew: f32,
        next: &Observation,
        terminated: bool,
    ) {
        let (cap, n) = (self.capacity, self.obs_len);
        match (&mut self.store, obs, next) {
            (
                Store::Pixels { store, dropped, .. },
                Observation::Pixels(a),
                Observation::Pixels(b),
            ) => {
                assert!(
                    a.len() == n && b.len() == n,
                    "pixel observations must have {n} bytes"
                );
                let f = n / store.frame_stack();
                if b[..n - f] == a[f..] {
                    store.push(a, act, rew, b, terminated);
                } else {
                    *dropped += 1;
                }
            }
            (Store::State(r), Observation::State(a), Observation::State(b)) => {
                let p = r.pos;
                let append = r.len < cap && p == r.len;
                put(&mut r.obs, p, n, a, append);
                put(&mut r.next, p, n, b, append);
                put(&mut r.act, p, self.act_dim, act, append);
                put(&mut r.rew, p, 1, &[rew], append);
                put(
                    &mut r.not_done,
                    p,
                    1,
                    &[if terminated { 0.0 } else { 1.0 }],
                    append,
                );
                r.pos = (r.pos + 1) % cap;
                r.len = (r.len + 1).min(cap);
            }
            _ => panic!("observation kind does not match the replay buffer"),
        }
    }

    /// Samples `batch` transitions uniformly with replacement and moves them to `device`.
    ///
    /// RNG draws, in order: `batch` indices (`gen_range(0..len)`, one per row, row order), then
    /// `batch · act_dim` standard-normal target-smoothing noise values (row-major).
    pub fn sample(&mut self, batch: usize, rng: &mut ChaCha8Rng, device: Device) -> Batch {
        assert!(!self.is_empty(), "sampling from an empty replay buffer");
        let b = batch as i64;
        let a = self.act_dim as i64;
        let mut shape = vec![b];
        shape.extend_from_slice(&self.obs_shape);
        let n = self.obs_len;
        let (obs, act, rew, next_obs, not_done) = match &mut self.store {
            Store::Pixels {
                store, batch: fb, ..
            } => {
                if fb.as_ref().is_none_or(|f| f.batch != batch) {
                    *fb = Some(FrameBatch::new(batch, store));
                }
                let fb = fb.as_mut().expect("batch buffer just made");
                store.sample_into(rng, fb);
                (
                    to_pixels(&fb.obs, &shape, device),
                    Tensor::from_slice(&fb.act).view([b, a]).to(device),
                    Tensor::from_slice(&fb.rew).view([b, 1]).to(device),
                    to_pixels(&fb.next_obs, &shape, device),
                    Tensor::from_slice(&fb.not_done).view([b, 1]).to(device),
                )
            }
            Store::State(r) => {
                r.idx.clear();
                for _ in 0..batch {
                    r.idx.push(rng.gen_range(0..r.len));
                }
                let o = Tensor::from_slice(gather(&r.obs, &r.idx, n, &mut r.scratch))
                    .view(shape.as_slice())
                    .to(device);
                let x = Tensor::from_slice(gather(&r.next, &r.idx, n, &mut r.scratch))
                    .view(shape.as_slice())
                    .to(device);
                let act = Tensor::from_slice(gather(&r.act, &r.idx, self.act_dim, &mut r.scratch))
                    .view([b, a])
                    .to(device);
                let rew = Tensor::from_slice(gather(&r.rew, &r.idx, 1, &mut r.scratch))
                    .view([b, 1])
                    .to(device);
                let nd = Tensor::from_slice(gather(&r.not_done, &r.idx, 1, &mut r.scratch))
                    .view([b, 1])
                    .to(device);
                (o, act, rew, x, nd)
            }
        };
        let noise: Vec<f32> = (0..batch * self.act_dim)
            .map(|_| StandardNormal.sample(rng))
            .collect();
        let noise = Tensor::from_slice(&noise).view([b, a]).to(device);
        Batch {
            obs,
            act,
            rew,
            next_obs,
            not_done,
            noise,
        }
    }

    /// The buffer's contents as named CPU tensors, for a checkpoint.
    ///
    /// Pixels (the frame store's raw rings, see [`super::frame_store::FrameStoreParts`]): `replay.frames` (u8),
    /// `replay.frame_last` (i64), `replay.act`, `replay.rew` (f32), `replay.not_done` (u8), and
    /// `replay.meta` = `[capacity, len, head, frames written, episode chain open]`.
    ///
    /// States: `replay.obs`, `replay.next_obs`, `replay.act`, `replay.rew`, `replay.not_done`
    /// (f32) and `replay.meta` = `[capacity, len, pos]`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        match &self.store {
            Store::Pixels { store, .. } => {
                let p = store.parts();
                let last: Vec<i64> = p.last.iter().map(|&x| x as i64).collect();
                let meta = [
                    self.capacity as i64,
                    p.len as i64,
                    p.head as i64,
                    p.written as i64,
                    i64::from(p.chain_open),
                ];
                vec![
                    ("replay.frames".into(), Tensor::from_slice(p.frames)),
                    ("replay.frame_last".into(), Tensor::from_slice(&last)),
                    ("replay.act".into(), Tensor::from_slice(p.act)),
                    ("replay.rew".into(), Tensor::from_slice(p.rew)),
                    ("replay.not_done".into(), Tensor::from_slice(p.not_done)),
                    ("replay.meta".into(), Tensor::from_slice(&meta)),
                ]
            }
            Store::State(r) => {
                let meta = [self.capacity as i64, r.len as i64, r.pos as i64];
                vec![
                    ("replay.obs".into(), Tensor::from_slice(&r.obs)),
                    ("replay.next_obs".into(), Tensor::from_slice(&r.next)),
                    ("replay.act".into(), Tensor::from_slice(&r.act)),
                    ("replay.rew".into(), Tensor::from_slice(&r.rew)),
                    ("replay.not_done".into(), Tensor::from_slice(&r.not_done)),
                    ("replay.meta".into(), Tensor::from_slice(&meta)),
                ]
            }
        }
    }

    /// Refills an empty buffer built with the same shape from [`Replay::state`]'s tensors.
    pub fn load_state(&mut self, get: &dyn Fn(&str) -> Option<Tensor>) -> Result<(), String> {
        let fetch = |n: &str| get(n).ok_or_else(|| format!("missing tensor `{n}`"));
        let meta: Vec<i64> = Vec::try_from(fetch("replay.meta")?.view([-1]))
            .map_err(|e| format!("replay.meta: {e}"))?;
        let cap = self.capacity;
        let fits = |c: i64| -> Result<(), String> {
            if c as usize != cap {
                Err(format!(
                    "replay buffer of capacity {c} does not fit this config's capacity {cap}"
                ))
            } else {
                Ok(())
            }
        };
        let f32s = |name: &str| -> Result<Vec<f32>, String> {
            Vec::try_from(fetch(name)?.view([-1])).map_err(|e| format!("{name}: {e}"))
        };
        match &mut self.store {
            Store::Pixels { store, .. } => {
                let [c, len, head, written, open] = meta[..] else {
                    return Err(format!(
                        "replay.meta has {} entries, expected 5 (a pixel replay buffer)",
                        meta.len()
                    ));
                };
                fits(c)?;
                if len < 0 || head < 0 || written < 0 || !(0..=1).contains(&open) {
                    return Err(format!("replay.meta has invalid entries {meta:?}"));
                }
                let u8s = |name: &str| -> Result<Vec<u8>, String> {
                    Vec::try_from(fetch(name)?.view([-1])).map_err(|e| format!("{name}: {e}"))
                };
                let last: Vec<i64> = Vec::try_from(fetch("replay.frame_last")?.view([-1]))
                    .map_err(|e| format!("replay.frame_last: {e}"))?;
                if last.iter().any(|&x| x < 0) {
                    return Err("replay.frame_last has a negative frame id".into());
                }
                store.restore(FrameStoreState {
                    frames: u8s("replay.frames")?,
                    last: last.into_iter().map(|x| x as u64).collect(),
                    act: f32s("replay.act")?,
                    rew: f32s("replay.rew")?,
                    not_done: u8s("replay.not_done")?,
                    written: written as u64,
                    head: head as usize,
                    len: len as usize,
                    chain_open: open == 1,
                })
            }
            Store::State(r) => {
                let [c, len, pos] = meta[..] else {
                    return Err(format!(
                        "replay.meta has {} entries, expected 3 (a state replay buffer)",
                        meta.len()
                    ));
                };
                fits(c)?;
                let (len, pos) = (len as usize, pos as usize);
                if len > cap || pos >= cap {
                    return Err(format!(
                        "replay buffer len {len}, pos {pos} does not fit capacity {cap}"
                    ));
                }
                let sized = |name: &str, v: &[f32], per: usize| -> Result<(), String> {
                    if v.len() != len * per {
                        Err(format!(
                            "tensor `{name}` has {} values, expected {}",
                            v.len(),
                            len * per
                        ))
                    } else {
                        Ok(())
                    }
                };
                let n = self.obs_len;
                let obs = f32s("replay.obs")?;
                sized("replay.obs", &obs, n)?;
                let next = f32s("replay.next_obs")?;
                sized("replay.next_obs", &next, n)?;
                let act = f32s("replay.act")?;
                sized("replay.act", &act, self.act_dim)?;
                let rew = f32s("replay.rew")?;
                sized("replay.rew", &rew, 1)?;
                let not_done = f32s("replay.not_done")?;
                sized("replay.not_done", &not_done, 1)?;
                (r.obs, r.next, r.act, r.rew, r.not_done) = (obs, next, act, rew, not_done);
                r.len = len;
                r.pos = pos;
                Ok(())
            }
        }
    }
}

fn put<T: Copy>(v: &mut Vec<T>, pos: usize, n: usize, x: &[T], append: bool) {
    debug_assert_eq!(x.len(), n);
    if append {
        v.extend_from_slice(x);
    } else {
        v[pos * n..(pos + 1) * n].copy_from_slice(x);
    }
}

fn gather<'a, T: Copy>(src: &[T], idx: &[usize], n: usize, scratch: &'a mut Vec<T>) -> &'a [T] {
    scratch.clear();
    for &i in idx {
        scratch.extend_from_slice(&src[i * n..(i + 1) * n]);
    }
    scratch
}

fn to_pixels(bytes: &[u8], shape: &[i64], device: Device) -> Tensor {
    // Move u8 to the device first (4× less traffic), then convert.
    Tensor::from_slice(bytes)
        .view(shape)
        .to(device)
        .to_kind(Kind::Float)
        / 255.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ring_overwrites_oldest_and_keeps_not_done() {
        let mut r = Replay::new(3, vec![2], false, 1);
        for i in 0..5 {
            let o = Observation::State(vec![i as f32, 0.0]);
            let n = Observation::State(vec![i as f32 + 0.5, 0.0]);
            r.push(&o, &[i as f32], i as f32, &n, i == 4);
        }
        assert_eq!(r.len(), 3);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let b = r.sample(64, &mut rng, Device::Cpu);
        let obs: Vec<f32> = Vec::try_from(b.obs.select(1, 0)).unwrap();
        assert!(
            obs.iter().all(|&x| (2.0..=4.0).contains(&x)),
            "old transitions must be gone: {obs:?}"
        );
        let rew: Vec<f32> = Vec::try_from(b.rew.view([-1])).unwrap();
        let nd: Vec<f32> = Vec::try_from(b.not_done.view([-1])).unwrap();
        let next: Vec<f32> = Vec::try_from(b.next_obs.select(1, 0)).unwrap();
        for ((o, r), (d, x)) in obs.iter().zip(&rew).zip(nd.iter().zip(&next)) {
            assert_eq!(o, r, "obs and reward of one transition stay together");
            assert_eq!(*x, o + 0.5);
            assert_eq!(*d, if *o == 4.0 { 0.0 } else { 1.0 });
        }
    }

    /// A transition as pushed, kept naively for comparison.
    struct Pushed {
        obs: Vec<u8>,
        next: Vec<u8>,
        rew: f32,
        terminated: bool,
    }

    /// Pushes episodes of the given lengths of random `[k, h, w]` frame stacks (reset stacks
    /// repeat their first frame, as `PixelObs` does); even episodes end terminated, odd ones
    /// truncated. The action is `[id, -id]` with `id` the push index.
    fn push_episodes(r: &mut Replay, lens: &[usize], rng: &mut ChaCha8Rng) -> Vec<Pushed> {
        use rand::RngCore;
        let n = r.obs_len;
        let f = n / r.obs_shape[0] as usize;
        let mut pushed = Vec::new();
        for (e, &len) in lens.iter().enumerate() {
            let mut stack = vec![0u8; n];
            rng.fill_bytes(&mut stack[..f]);
            for j in 1..n / f {
                stack.copy_within(..f, j * f);
            }
            for t in 0..len {
                let mut next = vec![0u8; n];
                next[..n - f].copy_from_slice(&stack[f..]);
                rng.fill_bytes(&mut next[n - f..]);
                let id = pushed.len() as f32;
                let terminated = e % 2 == 0 && t + 1 == len;
                let rew = (e * 1000 + t) as f32;
                r.push(
                    &Observation::Pixels(stack.clone()),
                    &[id, -id],
                    rew,
                    &Observation::Pixels(next.clone()),
                    terminated,
                );
                pushed.push(Pushed {
                    obs: stack,
                    next: next.clone(),
                    rew,
                    terminated,
                });
                stack = next;
            }
        }
        pushed
    }

    fn bytes(t: &Tensor) -> Vec<u8> {
        let v: Vec<f32> = Vec::try_from((t * 255.0).round().view([-1])).unwrap();
        v.into_iter().map(|x| x as u8).collect()
    }

    /// Every row of a sampled batch equals the transition pushed with its action's id.
    fn check_batch(b: &Batch, pushed: &[Pushed], oldest_live: usize) {
        let rows = b.act.size()[0] as usize;
        let (obs, next) = (bytes(&b.obs), bytes(&b.next_obs));
        let act: Vec<f32> = Vec::try_from(b.act.view([-1])).unwrap();
        let rew: Vec<f32> = Vec::try_from(b.rew.view([-1])).unwrap();
        let nd: Vec<f32> = Vec::try_from(b.not_done.view([-1])).unwrap();
        let n = obs.len() / rows;
        for i in 0..rows {
            let id = act[2 * i] as usize;
            assert_eq!(act[2 * i + 1], -(id as f32));
            assert!(id >= oldest_live, "evicted transition {id} sampled");
            let p = &pushed[id];
            assert!(obs[i * n..(i + 1) * n] == p.obs[..], "obs of {id}");
            assert!(next[i * n..(i + 1) * n] == p.next[..], "next_obs of {id}");
            assert_eq!(rew[i], p.rew);
            assert_eq!(nd[i], if p.terminated { 0.0 } else { 1.0 });
        }
    }

    #[test]
    fn pixel_samples_equal_what_was_pushed_across_episodes_and_wraps() {
        let cap = 40;
        let mut r = Replay::new(cap, vec![3, 4, 5], true, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // Several episodes (terminated and truncated), 4+ times past the ring's capacity.
        let lens = [7, 30, 1, 45, 12, 60, 3, 25];
        let pushed = push_episodes(&mut r, &lens, &mut rng);
        assert!(pushed.len() > 4 * cap);
        assert!(r.len() <= cap && r.len() > cap / 2, "len {}", r.len());
        let oldest_live = pushed.len() - r.len();
        for batch in [1, 64, 512] {
            let b = r.sample(batch, &mut rng, Device::Cpu);
            assert_eq!(b.obs.size(), vec![batch as i64, 3, 4, 5]);
            assert_eq!(b.noise.size(), vec![batch as i64, 2]);
            check_batch(&b, &pushed, oldest_live);
        }
        assert_eq!(r.dropped(), 0);
    }

    #[test]
    fn pixel_memory_is_about_one_frame_per_transition() {
        let cap = 2000;
        let (k, h, w) = (3usize, 84usize, 84usize);
        let mut r = Replay::new(cap, vec![k as i64, h as i64, w as i64], true, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        push_episodes(&mut r, &[100; 25], &mut rng);
        assert_eq!(r.len(), cap);
        let frame = (h * w) as f64;
        // Newest frame id (8), reward (4), done flag (1), two f32 actions (8).
        let fixed = (8 + 4 + 1 + 8) as f64;
        let per = r.bytes_used() as f64 / r.len() as f64;
        assert!(
            per <= 1.1 * frame + fixed,
            "{per} bytes per transition, frame {frame}"
        );
        // The old layout copied 2k frames per transition.
        assert!(per < 2.0 * k as f64 * frame / 5.0);
    }

    #[test]
    fn pixel_checkpoint_round_trip_continues_identically() {
        let mut a = Replay::new(30, vec![2, 3, 3], true, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        // The last episode (odd) is truncated, so its chain is still open at the checkpoint.
        let pushed = push_episodes(&mut a, &[20, 9, 30, 31], &mut rng);
        let saved: std::collections::HashMap<String, Tensor> = a.state().into_iter().collect();
        let get = |n: &str| saved.get(n).map(|t| t.shallow_clone());
        let mut b = Replay::new(30, vec![2, 3, 3], true, 2);
        b.load_state(&get).unwrap();
        assert_eq!((a.len(), a.bytes_used()), (b.len(), b.bytes_used()));
        // Both continue the open episode by one step, then start new ones.
        let last = &pushed.last().unwrap().next;
        let mut next = last[9..].to_vec();
        next.extend_from_slice(&[42; 9]);
        for r in [&mut a, &mut b] {
            let (o, x) = (
                Observation::Pixels(last.clone()),
                Observation::Pixels(next.clone()),
            );
            r.push(&o, &[-1.0, 1.0], 0.5, &x, false);
        }
        let mut more = rng.clone();
        push_episodes(&mut a, &[5, 17], &mut rng);
        push_episodes(&mut b, &[5, 17], &mut more);
        let (sa, sb) = (a.state(), b.state());
        for ((na, ta), (nb, tb)) in sa.iter().zip(&sb) {
            assert_eq!(na, nb);
            assert!(ta.equal(tb), "{na} differs after the round trip");
        }
        let (mut ra, mut rb) = (ChaCha8Rng::seed_from_u64(10), ChaCha8Rng::seed_from_u64(10));
        let (x, y) = (
            a.sample(128, &mut ra, Device::Cpu),
            b.sample(128, &mut rb, Device::Cpu),
        );
        for (u, v) in [
            (&x.obs, &y.obs),
            (&x.next_obs, &y.next_obs),
            (&x.act, &y.act),
            (&x.rew, &y.rew),
            (&x.not_done, &y.not_done),
            (&x.noise, &y.noise),
        ] {
            assert!(u.equal(v));
        }
        // A checkpoint of another capacity, or for a state buffer, is refused.
        let mut c = Replay::new(31, vec![2, 3, 3], true, 2);
        assert!(c.load_state(&get).is_err());
        let mut d = Replay::new(30, vec![18], false, 2);
        assert!(d.load_state(&get).is_err());
        // A frame store whose live transition points at an overwritten frame is refused.
        let mut bad: std::collections::HashMap<String, Tensor> = a.state().into_iter().collect();
        let last = bad["replay.frame_last"].copy();
        let _ = last.get(0).fill_(0);
        let _ = last.get(1).fill_(0);
        bad.insert("replay.frame_last".into(), last);
        let mut e = Replay::new(30, vec![2, 3, 3], true, 2);
        assert!(e
            .load_state(&|n| bad.get(n).map(|t| t.shallow_clone()))
            .is_err());
    }

    #[test]
    fn a_pixel_pair_that_is_not_a_frame_stack_is_dropped() {
        let mut r = Replay::new(4, vec![2, 1, 2], true, 1);
        let o = Observation::Pixels(vec![1, 1, 2, 2]);
        r.push(&o, &[0.0], 0.0, &Observation::Pixels(vec![0; 4]), false);
        assert_eq!((r.len(), r.dropped()), (0, 1));
        r.push(
            &o,
            &[0.0],
            0.0,
            &Observation::Pixels(vec![2, 2, 3, 3]),
            false,
        );
        assert_eq!((r.len(), r.dropped()), (1, 1));
    }

    #[test]
    fn pixels_are_scaled_to_unit_range() {
        let mut r = Replay::new(4, vec![1, 2, 2], true, 2);
        let o = Observation::Pixels(vec![0, 255, 51, 102]);
        r.push(&o, &[0.1, -0.1], 1.0, &o, false);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let b = r.sample(1, &mut rng, Device::Cpu);
        assert_eq!(b.obs.size(), vec![1, 1, 2, 2]);
        let v: Vec<f32> = Vec::try_from(b.obs.view([-1])).unwrap();
        assert_eq!(v, vec![0.0, 1.0, 0.2, 0.4]);
    }
}
