//! Replay buffer. Pixel observations are stored as u8 (4× smaller than f32) and converted to
//! float on the device, only for the sampled batch.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tch::{Device, Kind, Tensor};

use super::env::Observation;

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

enum Store {
    Pixels {
        obs: Vec<u8>,
        next: Vec<u8>,
        scratch: Vec<u8>,
    },
    State {
        obs: Vec<f32>,
        next: Vec<f32>,
        scratch: Vec<f32>,
    },
}

/// A ring buffer of transitions; memory grows with use up to `capacity`.
pub struct Replay {
    capacity: usize,
    len: usize,
    pos: usize,
    /// Elements per observation (C·H·W or the state dimension).
    obs_len: usize,
    /// Observation shape without the batch dimension.
    obs_shape: Vec<i64>,
    act_dim: usize,
    store: Store,
    act: Vec<f32>,
    rew: Vec<f32>,
    not_done: Vec<f32>,
    idx: Vec<usize>,
}

impl Replay {
    /// An empty buffer for observations of `obs_shape` (`[C, H, W]` for pixels, `[D]` for states).
    pub fn new(capacity: usize, obs_shape: Vec<i64>, pixels: bool, act_dim: usize) -> Replay {
        let obs_len = obs_shape.iter().product::<i64>() as usize;
        let store = if pixels {
            Store::Pixels {
                obs: Vec::new(),
                next: Vec::new(),
                scratch: Vec::new(),
            }
        } else {
            Store::State {
                obs: Vec::new(),
                next: Vec::new(),
                scratch: Vec::new(),
            }
        };
        Replay {
            capacity,
            len: 0,
            pos: 0,
            obs_len,
            obs_shape,
            act_dim,
            store,
            act: Vec::new(),
            rew: Vec::new(),
            not_done: Vec::new(),
            idx: Vec::new(),
        }
    }

    /// Transitions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores one transition, overwriting the oldest when full.
    pub fn push(
        &mut self,
        obs: &Observation,
        act: &[f32],
        rew: f32,
        next: &Observation,
        terminated: bool,
    ) {
        let (p, n) = (self.pos, self.obs_len);
        let append = self.len < self.capacity && p == self.len;
        match (&mut self.store, obs, next) {
            (
                Store::Pixels {
                    obs: o, next: nx, ..
                },
                Observation::Pixels(a),
                Observation::Pixels(b),
            ) => {
                put(o, p, n, a, append);
                put(nx, p, n, b, append);
            }
            (
                Store::State {
                    obs: o, next: nx, ..
                },
                Observation::State(a),
                Observation::State(b),
            ) => {
                put(o, p, n, a, append);
                put(nx, p, n, b, append);
            }
            _ => panic!("observation kind does not match the replay buffer"),
        }
        put(&mut self.act, p, self.act_dim, act, append);
        put(&mut self.rew, p, 1, &[rew], append);
        put(
            &mut self.not_done,
            p,
            1,
            &[if terminated { 0.0 } else { 1.0 }],
            append,
        );
        self.pos = (self.pos + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// Samples `batch` transitions uniformly with replacement and moves them to `device`.
    pub fn sample(&mut self, batch: usize, rng: &mut ChaCha8Rng, device: Device) -> Batch {
        assert!(self.len > 0, "sampling from an empty replay buffer");
        self.idx.clear();
        for _ in 0..batch {
            self.idx.push(rng.gen_range(0..self.len));
        }
        let b = batch as i64;
        let mut shape = vec![b];
        shape.extend_from_slice(&self.obs_shape);
        let n = self.obs_len;
        let (obs, next_obs) = match &mut self.store {
            Store::Pixels { obs, next, scratch } => {
                let o = gather(obs, &self.idx, n, scratch);
                let o = to_pixels(o, &shape, device);
                let x = gather(next, &self.idx, n, scratch);
                (o, to_pixels(x, &shape, device))
            }
            Store::State { obs, next, scratch } => {
                let o = Tensor::from_slice(gather(obs, &self.idx, n, scratch))
                    .view(shape.as_slice())
                    .to(device);
                let x = Tensor::from_slice(gather(next, &self.idx, n, scratch))
                    .view(shape.as_slice())
                    .to(device);
                (o, x)
            }
        };
        let mut fs = Vec::with_capacity(batch * self.act_dim);
        for &i in &self.idx {
            fs.extend_from_slice(&self.act[i * self.act_dim..(i + 1) * self.act_dim]);
        }
        let act = Tensor::from_slice(&fs)
            .view([b, self.act_dim as i64])
            .to(device);
        let col = |v: &[f32]| {
            let c: Vec<f32> = self.idx.iter().map(|&i| v[i]).collect();
            Tensor::from_slice(&c).view([b, 1]).to(device)
        };
        let rew = col(&self.rew);
        let not_done = col(&self.not_done);
        let noise: Vec<f32> = (0..batch * self.act_dim)
            .map(|_| StandardNormal.sample(rng))
            .collect();
        let noise = Tensor::from_slice(&noise)
            .view([b, self.act_dim as i64])
            .to(device);
        Batch {
            obs,
            act,
            rew,
            next_obs,
            not_done,
            noise,
        }
    }

    /// The buffer's contents as named CPU tensors (`replay.obs`, `replay.next_obs`, `replay.act`,
    /// `replay.rew`, `replay.not_done`, and `replay.meta` = `[capacity, len, pos]`), for a checkpoint.
    /// Pixels stay u8.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let (obs, next) = match &self.store {
            Store::Pixels { obs, next, .. } => (Tensor::from_slice(obs), Tensor::from_slice(next)),
            Store::State { obs, next, .. } => (Tensor::from_slice(obs), Tensor::from_slice(next)),
        };
        let meta = [self.capacity as i64, self.len as i64, self.pos as i64];
        vec![
            ("replay.obs".into(), obs),
            ("replay.next_obs".into(), next),
            ("replay.act".into(), Tensor::from_slice(&self.act)),
            ("replay.rew".into(), Tensor::from_slice(&self.rew)),
            ("replay.not_done".into(), Tensor::from_slice(&self.not_done)),
            ("replay.meta".into(), Tensor::from_slice(&meta)),
        ]
    }

    /// Refills an empty buffer built with the same shape from [`Replay::state`]'s tensors.
    pub fn load_state(&mut self, get: &dyn Fn(&str) -> Option<Tensor>) -> Result<(), String> {
        let fetch = |n: &str| get(n).ok_or_else(|| format!("missing tensor `{n}`"));
        let meta: Vec<i64> = Vec::try_from(fetch("replay.meta")?.view([-1]))
            .map_err(|e| format!("replay.meta: {e}"))?;
        let [cap, len, pos] = meta[..] else {
            return Err(format!(
                "replay.meta has {} entries, expected 3",
                meta.len()
            ));
        };
        let (cap, len, pos) = (cap as usize, len as usize, pos as usize);
        if cap != self.capacity || len > cap || pos >= cap.max(1) {
            return Err(format!(
                "replay buffer of capacity {cap} (len {len}, pos {pos}) does not fit this config's capacity {}",
                self.capacity
            ));
        }
        let sized = |name: &str, v: usize, per: usize| -> Result<(), String> {
            if v != len * per {
                Err(format!(
                    "tensor `{name}` has {v} values, expected {}",
                    len * per
                ))
            } else {
                Ok(())
            }
        };
        let n = self.obs_len;
        match &mut self.store {
            Store::Pixels { obs, next, .. } => {
                *obs =
                    Vec::try_from(fetch("replay.obs")?).map_err(|e| format!("replay.obs: {e}"))?;
                *next = Vec::try_from(fetch("replay.next_obs")?)
                    .map_err(|e| format!("replay.next_obs: {e}"))?;
                sized("replay.obs", obs.len(), n)?;
                sized("replay.next_obs", next.len(), n)?;
            }
            Store::State { obs, next, .. } => {
                *obs =
                    Vec::try_from(fetch("replay.obs")?).map_err(|e| format!("replay.obs: {e}"))?;
                *next = Vec::try_from(fetch("replay.next_obs")?)
                    .map_err(|e| format!("replay.next_obs: {e}"))?;
                sized("replay.obs", obs.len(), n)?;
                sized("replay.next_obs", next.len(), n)?;
            }
        }
        let f32s = |name: &str, per: usize| -> Result<Vec<f32>, String> {
            let v: Vec<f32> = Vec::try_from(fetch(name)?).map_err(|e| format!("{name}: {e}"))?;
            sized(name, v.len(), per)?;
            Ok(v)
        };
        self.act = f32s("replay.act", self.act_dim)?;
        self.rew = f32s("replay.rew", 1)?;
        self.not_done = f32s("replay.not_done", 1)?;
        self.len = len;
        self.pos = pos;
        Ok(())
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
