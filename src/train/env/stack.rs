//! Frame stacking for pixel observations, shared by every env.

use super::{ObsSpec, Observation};

/// The `k` most recent `side x side` grayscale frames, oldest first, plus a scratch frame the env
/// renders into.
///
/// Usage per env: render into [`PixelObs::frame_mut`], then call [`PixelObs::reset`] (episode
/// start: the stack is filled with `k` copies of that frame) or [`PixelObs::push`] (a step: the
/// oldest frame drops out, the new one becomes the last).
#[derive(Debug, Clone)]
pub(crate) struct PixelObs {
    side: usize,
    k: usize,
    /// The frame being rendered, `side * side` bytes, row-major.
    frame: Vec<u8>,
    /// `k` frames back to back, frame 0 the oldest: exactly the observation layout.
    stack: Vec<u8>,
}

impl PixelObs {
    /// An all-zero stack of `k` frames of `side x side` pixels.
    pub(crate) fn new(side: usize, k: usize) -> Self {
        Self {
            side,
            k,
            frame: vec![0; side * side],
            stack: vec![0; k * side * side],
        }
    }

    /// Image side in pixels.
    pub(crate) fn side(&self) -> usize {
        self.side
    }

    /// The observation spec of this stack: `k` square frames of `side` pixels.
    pub(crate) fn spec(&self) -> ObsSpec {
        ObsSpec::Pixels {
            channels: self.k(),
            height: self.side(),
            width: self.side(),
        }
    }

    /// Number of stacked frames (the observation's channels).
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// The scratch frame to render the current state into.
    pub(crate) fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.frame
    }

    /// Fills all `k` slots with the scratch frame and returns the observation.
    pub(crate) fn reset(&mut self) -> Observation {
        for slot in self.stack.chunks_exact_mut(self.frame.len()) {
            slot.copy_from_slice(&self.frame);
        }
        Observation::Pixels(self.stack.clone())
    }

    /// Shifts the stack one frame towards the oldest end, appends the scratch frame as the newest,
    /// and returns the observation.
    pub(crate) fn push(&mut self) -> Observation {
        let n = self.frame.len();
        self.stack.copy_within(n.., 0);
        let last = self.stack.len() - n;
        self.stack[last..].copy_from_slice(&self.frame);
        Observation::Pixels(self.stack.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixels(o: Observation) -> Vec<u8> {
        match o {
            Observation::Pixels(p) => p,
            Observation::State(_) => panic!("state observation"),
        }
    }

    #[test]
    fn reset_fills_all_frames_and_push_shifts() {
        let (side, k) = (4, 3);
        let n = side * side;
        let mut p = PixelObs::new(side, k);
        p.frame_mut().fill(7);
        p.frame_mut()[5] = 1;
        let first = p.frame_mut().to_vec();
        let o = pixels(p.reset());
        assert_eq!(o.len(), k * n);
        for f in o.chunks_exact(n) {
            assert_eq!(f, &first[..]);
        }

        // Step 1: frames are [first, first, a].
        p.frame_mut().fill(10);
        let a = p.frame_mut().to_vec();
        let o1 = pixels(p.push());
        assert_eq!(&o1[..n], &first[..]);
        assert_eq!(&o1[n..2 * n], &first[..]);
        assert_eq!(&o1[2 * n..], &a[..]);

        // Step 2: [first, a, b]; step 3: [a, b, c] (the oldest drops out).
        p.frame_mut().fill(20);
        let b = p.frame_mut().to_vec();
        let o2 = pixels(p.push());
        assert_eq!(&o2[..n], &o1[n..2 * n]);
        assert_eq!(&o2[n..2 * n], &o1[2 * n..]);
        assert_eq!(&o2[2 * n..], &b[..]);
        p.frame_mut().fill(30);
        let o3 = pixels(p.push());
        assert_eq!(&o3[..n], &a[..]);
        assert_eq!(&o3[n..2 * n], &b[..]);
        assert!(o3[2 * n..].iter().all(|&v| v == 30));

        // A new episode forgets the old frames.
        p.frame_mut().fill(99);
        assert!(pixels(p.reset()).iter().all(|&v| v == 99));
    }

    #[test]
    fn single_frame_stack() {
        let mut p = PixelObs::new(2, 1);
        p.frame_mut().copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(pixels(p.reset()), vec![1, 2, 3, 4]);
        p.frame_mut().copy_from_slice(&[5, 6, 7, 8]);
        assert_eq!(pixels(p.push()), vec![5, 6, 7, 8]);
        assert_eq!((p.side(), p.k()), (2, 1));
    }
}
