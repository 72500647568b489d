//! A replay store for stacked pixel observations that keeps every frame once.
//!
//! [`super::replay::Replay`] copies both stacks of a transition (`obs` and `next_obs`, `k` frames
//! each), so a transition costs `2k` frames: 42 GB for 1M transitions of 3×84×84. Consecutive
//! stacks of one episode share `k − 1` frames, and `next_obs` of one step is `obs` of the next,
//! so here a transition adds one new frame and a fixed part (the id of its newest frame, the
//! action, the reward, the done flag). An episode also stores its first stack once.
//!
//! Frames live in a ring of `capacity + capacity / 20 + k + 1` slots; frames get increasing
//! global ids and frame `id` lives in slot `id % slots`. Each transition's frames are contiguous
//! ids: `obs` = `[last − k, last − 1]`, `next_obs` = `[last − k + 1, last]`. Transitions sit in
//! their own ring in push order, so their frame ids increase too, and writing a frame first
//! evicts, oldest first, every transition that still refers to the frame being overwritten. A
//! live transition therefore never sees a recycled frame. With episodes shorter than about
//! `20·k` steps the frame ring fills before the transition ring, and fewer than `capacity`
//! transitions stay live.
//!
//! Pure Rust (no tch): sampling fills a preallocated [`FrameBatch`] of contiguous u8 stacks
//! that the trainer turns into one tensor.

use rand::Rng;

/// Bytes of the fixed part of a transition besides its action: newest frame id (u64),
/// reward (f32), not-done flag (u8).
const FIXED_BYTES: usize = 8 + 4 + 1;

/// Frame-deduplicating ring buffer of `(obs, act, rew, next_obs, terminated)` transitions.
#[derive(Debug)]
pub struct FrameStore {
    frame_len: usize,
    frame_shape: [usize; 2],
    k: usize,
    act_dim: usize,
    capacity: usize,
    slots: usize,
    /// Frame slots, `slots * frame_len` bytes once full; grows with use.
    frames: Vec<u8>,
    /// Global id the next written frame gets (= frames written so far).
    written: u64,
    /// Per transition slot: global id of the newest `next_obs` frame.
    last: Vec<u64>,
    act: Vec<f32>,
    rew: Vec<f32>,
    not_done: Vec<u8>,
    /// Ring position of the oldest live transition.
    head: usize,
    len: usize,
    /// The newest `k` frames are the last pushed `next_obs`, and the episode goes on.
    chain_open: bool,
}

/// A preallocated sampled batch: contiguous `[batch, k, h, w]` u8 stacks and their scalars.
#[derive(Debug, Clone)]
pub struct FrameBatch {
    /// Transitions in the batch.
    pub batch: usize,
    /// `batch · k · h · w` bytes, stack by stack, oldest frame first (as `Observation::Pixels`).
    pub obs: Vec<u8>,
    /// The same for `next_obs`.
    pub next_obs: Vec<u8>,
    /// `batch · act_dim` actions.
    pub act: Vec<f32>,
    /// `batch` rewards.
    pub rew: Vec<f32>,
    /// `batch` values of 1 − terminated (truncation is not terminal).
    pub not_done: Vec<f32>,
}

impl FrameBatch {
    /// A batch of `batch` transitions shaped for `store`; reuse it across calls to
    /// [`FrameStore::sample_into`].
    pub fn new(batch: usize, store: &FrameStore) -> FrameBatch {
        let stack = store.k * store.frame_len;
        FrameBatch {
            batch,
            obs: vec![0; batch * stack],
            next_obs: vec![0; batch * stack],
            act: vec![0.0; batch * store.act_dim],
            rew: vec![0.0; batch],
            not_done: vec![0.0; batch],
        }
    }
}

/// A borrowed view of a [`FrameStore`]'s complete contents, for checkpoints: the raw rings as
/// they are in memory, so [`FrameStore::restore`] rebuilds the store exactly (same live
/// transitions in the same ring positions, so sampling continues identically).
#[derive(Debug, Clone, Copy)]
pub struct FrameStoreParts<'a> {
    /// Frame slots written so far, `min(written, slots) · h · w` bytes, slot order.
    pub frames: &'a [u8],
    /// Per transition slot: global id of its newest `next_obs` frame.
    pub last: &'a [u64],
    /// Per transition slot: `act_dim` actions.
    pub act: &'a [f32],
    /// Per transition slot: reward.
    pub rew: &'a [f32],
    /// Per transition slot: 1 − terminated.
    pub not_done: &'a [u8],
    /// Frames written since creation (the next frame's global id).
    pub written: u64,
    /// Ring position of the oldest live transition.
    pub head: usize,
    /// Live transitions.
    pub len: usize,
    /// Whether the newest `k` frames are the last `next_obs` of an episode that goes on.
    pub chain_open: bool,
}

/// The owned counterpart of [`FrameStoreParts`], read back from a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct FrameStoreState {
    /// See [`FrameStoreParts::frames`].
    pub frames: Vec<u8>,
    /// See [`FrameStoreParts::last`].
    pub last: Vec<u64>,
    /// See [`FrameStoreParts::act`].
    pub act: Vec<f32>,
    /// See [`FrameStoreParts::rew`].
    pub rew: Vec<f32>,
    /// See [`FrameStoreParts::not_done`].
    pub not_done: Vec<u8>,
    /// See [`FrameStoreParts::written`].
    pub written: u64,
    /// See [`FrameStoreParts::head`].
    pub head: usize,
    /// See [`FrameStoreParts::len`].
    pub len: usize,
    /// See [`FrameStoreParts::chain_open`].
    pub chain_open: bool,
}

impl FrameStore {
    /// An empty store for up to `capacity` transitions of `k` stacked `[h, w]` u8 frames.
    ///
    /// # Panics
    /// If `capacity`, `k` or a frame side is zero.
    pub fn new(capacity: usize, frame_shape: [usize; 2], k: usize, act_dim: usize) -> FrameStore {
        Self::try_new(capacity, frame_shape, k, act_dim).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`FrameStore::new`], with an error instead of an abort when the address space can't hold
    /// the store (a `buffer_size` far beyond the machine): "needs N GB for M transitions".
    ///
    /// # Panics
    /// If `capacity`, `k` or a frame side is zero.
    pub fn try_new(
        capacity: usize,
        frame_shape: [usize; 2],
        k: usize,
        act_dim: usize,
    ) -> Result<FrameStore, String> {
        assert!(
            capacity > 0 && k > 0,
            "capacity and frame stack must be > 0"
        );
        let frame_len = frame_shape[0] * frame_shape[1];
        assert!(frame_len > 0, "frames must have pixels");
        let slots = Self::frame_slots(capacity, k);
        let too_big = || {
            // In f64: the usize products may overflow for the sizes that get here.
            let gb = (slots as f64 * frame_len as f64
                + capacity as f64 * (FIXED_BYTES + 4 * act_dim) as f64)
                / 1e9;
            format!(
                "{capacity} transitions of {}x{} frames need {gb:.1} GB, which could not be reserved; lower training.buffer_size",
                frame_shape[0], frame_shape[1]
            )
        };
        fn reserve<T>(n: Option<usize>) -> Option<Vec<T>> {
            let mut v = Vec::new();
            v.try_reserve_exact(n?).ok()?;
            Some(v)
        }
        // Reserved, not touched: memory becomes resident only as frames arrive.
        Ok(FrameStore {
            frame_len,
            frame_shape,
            k,
            act_dim,
            capacity,
            slots,
            frames: reserve(slots.checked_mul(frame_len)).ok_or_else(too_big)?,
            written: 0,
            last: reserve(Some(capacity)).ok_or_else(too_big)?,
            act: reserve(capacity.checked_mul(act_dim)).ok_or_else(too_big)?,
            rew: reserve(Some(capacity)).ok_or_else(too_big)?,
            not_done: reserve(Some(capacity)).ok_or_else(too_big)?,
            head: 0,
            len: 0,
            chain_open: false,
        })
    }

    /// Frame slots for `capacity` transitions: 5% slack for the first stack of each episode
    /// (enough for episodes of `20·k` steps or more) plus one stack and one frame.
    pub fn frame_slots(capacity: usize, k: usize) -> usize {
        capacity + capacity / 20 + k + 1
    }

    /// Bytes a full store of `capacity` transitions holds, per transition.
    pub fn bytes_per_transition(
        capacity: usize,
        frame_shape: [usize; 2],
        k: usize,
        act_dim: usize,
    ) -> f64 {
        let frame = frame_shape[0] * frame_shape[1];
        let total = Self::frame_slots(capacity, k) * frame + capacity * (FIXED_BYTES + 4 * act_dim);
        total as f64 / capacity as f64
    }

    /// Live transitions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no transition is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most transitions the store keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frames written since creation (each episode's first stack, then one per transition).
    pub fn frames_written(&self) -> u64 {
        self.written
    }

    /// `[h, w]` of one frame.
    pub fn frame_shape(&self) -> [usize; 2] {
        self.frame_shape
    }

    /// Frames per stack.
    pub fn frame_stack(&self) -> usize {
        self.k
    }

    /// Bytes the store holds now: frame slots in use plus the fixed part of every transition
    /// slot in use (newest frame id, actions, reward, done flag). Reserved but untouched
    /// capacity is not counted (it is not resident).
    pub fn bytes_used(&self) -> usize {
        self.frames.len() + self.last.len() * (FIXED_BYTES + 4 * self.act_dim)
    }

    /// The store's complete contents, borrowed, for a checkpoint.
    pub fn parts(&self) -> FrameStoreParts<'_> {
        FrameStoreParts {
            frames: &self.frames,
            last: &self.last,
            act: &self.act,
            rew: &self.rew,
            not_done: &self.not_done,
            written: self.written,
            head: self.head,
            len: self.len,
            chain_open: self.chain_open,
        }
    }

    /// Replaces the contents of this store (built with the same capacity, frame shape, stack and
    /// action size) with `s`, as [`FrameStore::parts`] gave them. Checks that the rings are
    /// consistent and that every live transition's frames are still in the frame ring.
    pub fn restore(&mut self, s: FrameStoreState) -> Result<(), String> {
        let (n, k, cap, a) = (self.frame_len, self.k as u64, self.capacity, self.act_dim);
        let used = s.written.min(self.slots as u64) as usize;
        if s.frames.len() != used * n {
            return Err(format!(
                "frame store: {} frame bytes, expected {} ({} frames of {n} bytes)",
                s.frames.len(),
                used * n,
                used
            ));
        }
        let slots_used = s.last.len();
        if slots_used > cap
            || s.act.len() != slots_used * a
            || s.rew.len() != slots_used
            || s.not_done.len() != slots_used
        {
            return Err(format!(
                "frame store: transition rings of {} ids, {} actions, {} rewards, {} flags do not fit capacity {cap} with {a} actions",
                slots_used,
                s.act.len(),
                s.rew.len(),
                s.not_done.len()
            ));
        }
        if s.len > slots_used || s.head >= cap || (slots_used < cap && s.head + s.len != slots_used)
        {
            return Err(format!(
                "frame store: head {} and len {} do not fit {slots_used} used transition slots of {cap}",
                s.head, s.len
            ));
        }
        if s.not_done.iter().any(|&d| d > 1) {
            return Err("frame store: a done flag is neither 0 nor 1".into());
        }
        let oldest = s.written.saturating_sub(self.slots as u64);
        for i in 0..s.len {
            let last = s.last[(s.head + i) % cap];
            if last >= s.written || last < k || last - k < oldest {
                return Err(format!(
                    "frame store: live transition {i} reads frames {}..={last}, but frames {oldest}..{} are stored",
                    last.saturating_sub(k),
                    s.written
                ));
            }
        }
        if s.chain_open && s.written < k {
            return Err("frame store: an open episode chain with fewer than k frames".into());
        }
        // Keep the growth exact, as `new` reserved it.
        let mut frames = s.frames;
        frames.reserve_exact(self.slots * n - frames.len());
        let mut last = s.last;
        last.reserve_exact(cap - slots_used);
        let mut act = s.act;
        act.reserve_exact((cap - slots_used) * a);
        let mut rew = s.rew;
        rew.reserve_exact(cap - slots_used);
        let mut not_done = s.not_done;
        not_done.reserve_exact(cap - slots_used);
        *self = FrameStore {
            frames,
            written: s.written,
            last,
            act,
            rew,
            not_done,
            head: s.head,
            len: s.len,
            chain_open: s.chain_open,
            ..*self
        };
        Ok(())
    }

    /// Stores one transition; `obs` and `next` are `k` stacked frames, oldest first. When `obs`
    /// is the previous push's `next` (same episode) only `next`'s newest frame is written;
    /// otherwise `obs`'s `k` frames are written first. The oldest transitions are evicted when the
    /// transition ring is full or their frames are about to be overwritten.
    ///
    /// # Panics
    /// If a stack has the wrong length, or `next` is not `obs` shifted by one frame (the older
    /// `k − 1` frames of `next` must be the newer `k − 1` of `obs`).
    pub fn push(&mut self, obs: &[u8], act: &[f32], rew: f32, next: &[u8], terminated: bool) {
        let (n, k) = (self.frame_len, self.k);
        assert_eq!(obs.len(), k * n, "obs must hold {k} frames of {n} bytes");
        assert_eq!(
            next.len(),
            k * n,
            "next_obs must hold {k} frames of {n} bytes"
        );
        assert_eq!(
            act.len(),
            self.act_dim,
            "action must have {} values",
            self.act_dim
        );
        assert!(
            next[..(k - 1) * n] == obs[n..],
            "next_obs must be obs shifted by one frame (a frame stack)"
        );
        if !(self.chain_open && self.newest_stack_is(obs)) {
            for f in obs.chunks_exact(n) {
                self.write_frame(f);
            }
        }
        self.write_frame(&next[(k - 1) * n..]);
        if self.len == self.capacity {
            self.evict_oldest();
        }
        let pos = (self.head + self.len) % self.capacity;
        let last = self.written - 1;
        let nd = u8::from(!terminated);
        if pos == self.last.len() {
            self.last.push(last);
            self.act.extend_from_slice(act);
            self.rew.push(rew);
            self.not_done.push(nd);
        } else {
            self.last[pos] = last;
            self.act[pos * self.act_dim..(pos + 1) * self.act_dim].copy_from_slice(act);
            self.rew[pos] = rew;
            self.not_done[pos] = nd;
        }
        self.len += 1;
        self.chain_open = !terminated;
    }

    /// Samples `batch.batch` live transitions uniformly with replacement into `batch`.
    ///
    /// # Panics
    /// If the store is empty or `batch` was made for another shape.
    pub fn sample_into<R: Rng>(&self, rng: &mut R, batch: &mut FrameBatch) {
        assert!(self.len > 0, "sampling from an empty frame store");
        let stack = self.k * self.frame_len;
        assert_eq!(batch.obs.len(), batch.batch * stack, "batch shape mismatch");
        for b in 0..batch.batch {
            let pos = (self.head + rng.gen_range(0..self.len)) % self.capacity;
            self.copy_stacks(
                pos,
                &mut batch.obs[b * stack..(b + 1) * stack],
                &mut batch.next_obs[b * stack..(b + 1) * stack],
            );
            let a = self.act_dim;
            batch.act[b * a..(b + 1) * a].copy_from_slice(&self.act[pos * a..(pos + 1) * a]);
            batch.rew[b] = self.rew[pos];
            batch.not_done[b] = f32::from(self.not_done[pos]);
        }
    }

    /// Copies the `i`-th live transition (0 = oldest) into `obs` and `next` (`k` frames each)
    /// and returns its action, reward and not-done flag.
    ///
    /// # Panics
    /// If `i >= len()` or a buffer has the wrong length.
    pub fn get(&self, i: usize, obs: &mut [u8], next: &mut [u8]) -> (&[f32], f32, bool) {
        assert!(i < self.len, "transition {i} of {}", self.len);
        let pos = (self.head + i) % self.capacity;
        self.copy_stacks(pos, obs, next);
        let a = self.act_dim;
        (
            &self.act[pos * a..(pos + 1) * a],
            self.rew[pos],
            self.not_done[pos] == 1,
        )
    }

    fn frame(&self, id: u64) -> &[u8] {
        let s = (id % self.slots as u64) as usize * self.frame_len;
        &self.frames[s..s + self.frame_len]
    }

    fn copy_stacks(&self, pos: usize, obs: &mut [u8], next: &mut [u8]) {
        let n = self.frame_len;
        let first = self.last[pos] - self.k as u64;
        for (j, (o, x)) in obs
            .chunks_exact_mut(n)
            .zip(next.chunks_exact_mut(n))
            .enumerate()
        {
            o.copy_from_slice(self.frame(first + j as u64));
            x.copy_from_slice(self.frame(first + j as u64 + 1));
        }
    }

    /// Whether the newest `k` frames written equal `stack`.
    fn newest_stack_is(&self, stack: &[u8]) -> bool {
        let k = self.k as u64;
        if self.written < k {
            return false;
        }
        let start = self.written - k;
        stack
            .chunks_exact(self.frame_len)
            .enumerate()
            .all(|(j, f)| self.frame(start + j as u64) == f)
    }

    fn write_frame(&mut self, f: &[u8]) {
        let id = self.written;
        let slots = self.slots as u64;
        if id >= slots {
            // Frame `id − slots` is about to go: drop every transition that reads it.
            let gone = id - slots;
            while self.len > 0 && self.last[self.head] - self.k as u64 <= gone {
                self.evict_oldest();
            }
            let s = (id % slots) as usize * self.frame_len;
            self.frames[s..s + self.frame_len].copy_from_slice(f);
        } else {
            self.frames.extend_from_slice(f);
        }
        self.written += 1;
    }

    fn evict_oldest(&mut self) {
        self.head = (self.head + 1) % self.capacity;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Pushes `episodes` episodes of the given lengths of `[h, w]` random frames, stacked `k`,
    /// into `store`; returns every pushed `(obs, next, act0)` in push order.
    fn fill(
        store: &mut FrameStore,
        lens: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Vec<(Vec<u8>, Vec<u8>, f32)> {
        let (k, n) = (store.k, store.frame_len);
        let mut pushed = Vec::new();
        for (e, &len) in lens.iter().enumerate() {
            let mut stack = vec![0u8; k * n];
            rng.fill_bytes(&mut stack[..n]);
            for j in 1..k {
                stack.copy_within(..n, j * n);
            }
            for t in 0..len {
                let mut next = vec![0u8; k * n];
                next[..(k - 1) * n].copy_from_slice(&stack[n..]);
                rng.fill_bytes(&mut next[(k - 1) * n..]);
                let id = pushed.len() as f32;
                let terminated = e % 2 == 0 && t + 1 == len;
                store.push(&stack, &[id, -id], t as f32, &next, terminated);
                pushed.push((stack.clone(), next.clone(), id));
                stack = next;
            }
        }
        pushed
    }

    /// Every live transition matches what was pushed (by its action's id).
    fn check_all_live(store: &FrameStore, pushed: &[(Vec<u8>, Vec<u8>, f32)]) {
        let stack = store.k * store.frame_len;
        let (mut o, mut x) = (vec![0u8; stack], vec![0u8; stack]);
        for i in 0..store.len() {
            let (act, _, _) = store.get(i, &mut o, &mut x);
            let want = &pushed[act[0] as usize];
            assert_eq!(act[1], -act[0]);
            assert!(o == want.0, "obs of transition {} was overwritten", act[0]);
            assert!(
                x == want.1,
                "next_obs of transition {} was overwritten",
                act[0]
            );
        }
    }

    #[test]
    fn one_episode_stores_each_frame_once() {
        let mut s = FrameStore::new(100, [4, 5], 3, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let pushed = fill(&mut s, &[40], &mut rng);
        assert_eq!(s.len(), 40);
        // The first stack (3 frames) once, then one new frame per transition.
        assert_eq!(s.frames_written(), 3 + 40);
        check_all_live(&s, &pushed);
    }

    #[test]
    fn a_new_episode_writes_its_first_stack() {
        let mut s = FrameStore::new(100, [3, 3], 2, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let pushed = fill(&mut s, &[5, 7, 4], &mut rng);
        assert_eq!(s.frames_written(), 3 * 2 + 16);
        check_all_live(&s, &pushed);
    }

    #[test]
    fn terminal_transition_ends_the_chain_even_if_bytes_repeat() {
        let mut s = FrameStore::new(10, [2, 2], 2, 1);
        let a = [1u8; 8];
        let b = [1, 1, 1, 1, 2, 2, 2, 2];
        s.push(&a, &[0.0], 0.0, &b, true);
        // Same bytes as the last next_obs, but after a terminal step: a new chain.
        s.push(&b, &[1.0], 0.0, &[2, 2, 2, 2, 3, 3, 3, 3], false);
        assert_eq!(s.frames_written(), 3 + 3);
        let (mut o, mut x) = ([0u8; 8], [0u8; 8]);
        let (_, _, nd) = s.get(0, &mut o, &mut x);
        assert!(!nd);
        assert_eq!((o, x), (a, b));
        let (_, _, nd) = s.get(1, &mut o, &mut x);
        assert!(nd);
        assert_eq!(x, [2, 2, 2, 2, 3, 3, 3, 3]);
    }

    #[test]
    fn ring_eviction_never_exposes_an_overwritten_frame() {
        // Long episodes: the transition ring is the limit.
        let mut s = FrameStore::new(50, [3, 4], 3, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let pushed = fill(&mut s, &[80, 130, 61], &mut rng);
        assert_eq!(s.len(), 50);
        check_all_live(&s, &pushed);
        // The live ones are the newest 50.
        let (mut o, mut x) = (vec![0u8; 36], vec![0u8; 36]);
        let (act, _, _) = s.get(0, &mut o, &mut x);
        assert_eq!(act[0] as usize, pushed.len() - 50);
    }

    #[test]
    fn short_episodes_evict_by_frame_pressure_and_stay_correct() {
        // Episodes of 2 steps with k = 4: 6 frames per 2 transitions, far above the 5% slack.
        let mut s = FrameStore::new(40, [2, 3], 4, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let lens = vec![2; 100];
        let pushed = fill(&mut s, &lens, &mut rng);
        assert!(s.len() < 40 && s.len() > 10, "len {}", s.len());
        check_all_live(&s, &pushed);
        let mut batch = FrameBatch::new(64, &s);
        s.sample_into(&mut rng, &mut batch);
        let stack = 4 * 6;
        for b in 0..64 {
            let want = &pushed[batch.act[2 * b] as usize];
            assert!(batch.obs[b * stack..(b + 1) * stack] == want.0[..]);
            assert!(batch.next_obs[b * stack..(b + 1) * stack] == want.1[..]);
        }
    }

    #[test]
    fn sampling_is_uniform_over_live_transitions_and_keeps_fields_together() {
        let mut s = FrameStore::new(20, [2, 2], 2, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let pushed = fill(&mut s, &[15, 15], &mut rng);
        let mut batch = FrameBatch::new(2000, &s);
        s.sample_into(&mut rng, &mut batch);
        let mut seen = std::collections::BTreeMap::new();
        for b in 0..batch.batch {
            let id = batch.act[2 * b] as usize;
            assert!(id >= pushed.len() - 20, "evicted transition {id} sampled");
            assert_eq!(batch.act[2 * b + 1], -(id as f32));
            *seen.entry(id).or_insert(0) += 1;
            // Episode 0 (even) ends terminal at its 15th step; episode 1 does not.
            assert_eq!(batch.not_done[b], if id == 14 { 0.0 } else { 1.0 });
            assert_eq!(batch.rew[b], (id % 15) as f32);
        }
        assert_eq!(seen.len(), 20);
        assert!(seen.values().all(|&c| c > 50), "{seen:?}");
    }

    #[test]
    #[should_panic(expected = "shifted by one frame")]
    fn a_next_obs_that_is_not_a_shifted_stack_is_rejected() {
        let mut s = FrameStore::new(4, [1, 2], 2, 1);
        s.push(&[1, 1, 2, 2], &[0.0], 0.0, &[9, 9, 3, 3], false);
    }

    #[test]
    fn bytes_per_transition_meet_the_target() {
        let frame = 84.0 * 84.0;
        let per = FrameStore::bytes_per_transition(1_000_000, [84, 84], 3, 2);
        let fixed = (FIXED_BYTES + 8) as f64;
        assert!(per <= 1.1 * frame + fixed, "{per} bytes per transition");
        assert!(per * 1e6 / 1e9 < 7.5, "{} GB for 1M", per * 1e6 / 1e9);
    }
}
