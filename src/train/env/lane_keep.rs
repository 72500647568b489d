//! Lane keeping on a procedurally curving road: a small, fast stand-in for a driving simulator.
//!
//! - Road: a centreline whose curvature is a smooth function of arc length `s` (a sum of
//!   `N_SINES` random sinusoids, `|kappa| <= KAPPA_MAX`), drawn per episode from the env RNG and
//!   integrated into points every `ROAD_DS` metres. The first `STRAIGHT_END` metres are straight
//!   and the curvature fades in until `RAMP_END`, so every episode starts on a straight. Points
//!   are generated lazily ahead of the car and dropped far behind it, so memory stays bounded
//!   however long an episode runs.
//! - Car: kinematic bicycle (rear-axle reference point), state x, y (m), heading (rad), speed
//!   (m/s). `action[0]` steers (±`MAX_STEER` rad), `action[1]` accelerates or brakes
//!   (±`MAX_ACCEL` m/s²). It starts on the centreline at `START_S`, aligned, at `START_SPEED`.
//! - Reward per step: metres of progress along the centreline minus `LATERAL_PENALTY * offset²`
//!   minus `SPEED_PENALTY * ((v - TARGET_SPEED) / TARGET_SPEED)²` (a speed limit, so the best
//!   throttle is inside (-1, 1) rather than pinned at full: a policy that saturates its tanh stops
//!   receiving gradient, which would make gradient-stability sweeps meaningless);
//!   leaving the road (`|offset| > LANE_HALF_WIDTH`) instead gives `OFFROAD_PENALTY` and
//!   terminates. Then times `reward_scale`.
//! - Observation: an ego-centred top-down grayscale image (heading up) or a small state vector
//!   (see [`LaneKeep`]).
//!
//! Everything is a function of the reset seed and the actions: no global RNG, no clock, no hash
//! maps.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;

use super::raster::{fill_capsule, fill_disc, fill_rect};
use super::stack::PixelObs;
use super::{unit_action, validate, Env, EnvError, ObsSpec, Observation, Step};
use crate::config::{EnvConfig, ObsKind};

/// Half the road width (m): the car is off the road when its lateral offset exceeds this.
pub const LANE_HALF_WIDTH: f64 = 2.0;
/// Spacing of the centreline points, in arc length (m).
pub const ROAD_DS: f64 = 0.5;
/// Largest road curvature (1/m): a 30 m radius.
pub const KAPPA_MAX: f64 = 1.0 / 30.0;
/// Number of sinusoids summed into the curvature profile.
const N_SINES: usize = 3;
/// Range of the sinusoids' wavelengths (m).
const WAVELENGTH_M: (f64, f64) = (80.0, 300.0);
/// Arc length (m) where the car starts; the road behind it is straight and visible.
pub const START_S: f64 = 30.0;
/// The road is straight up to this arc length (m) ...
const STRAIGHT_END: f64 = 40.0;
/// ... and its curvature fades in (smoothstep) until this one (m).
const RAMP_END: f64 = 70.0;

/// Bicycle wheelbase (m).
pub const WHEELBASE: f64 = 2.5;
/// Steering angle at `action[0] = ±1` (rad).
pub const MAX_STEER: f64 = 0.5;
/// Acceleration at `action[1] = 1`, deceleration at `-1` (m/s²).
pub const MAX_ACCEL: f64 = 4.0;
/// Speed bound (m/s); speed is clamped to `[0, V_MAX]` (no reversing).
pub const V_MAX: f64 = 20.0;
/// Speed at the start of an episode (m/s).
pub const START_SPEED: f64 = 8.0;
/// Control period (s).
pub const DT: f64 = 0.1;

/// Speed the reward prefers to hold (m/s). With `SPEED_PENALTY` the best constant speed is 12.5 m/s.
pub const TARGET_SPEED: f64 = 10.0;
/// Weight of the squared relative speed error, subtracted every step.
pub const SPEED_PENALTY: f64 = 2.0;

/// The speed term of the reward at speed `v` (m/s).
pub fn speed_penalty(v: f64) -> f64 {
    SPEED_PENALTY * ((v - TARGET_SPEED) / TARGET_SPEED).powi(2)
}

/// Reward per squared metre of lateral offset, subtracted every step.
pub const LATERAL_PENALTY: f64 = 0.1;
/// The whole reward of the step that leaves the road (before `reward_scale`).
pub const OFFROAD_PENALTY: f64 = -10.0;
/// Look-ahead distances (m) of the curvature entries of the state observation.
pub const LOOKAHEAD_M: [f64; 3] = [5.0, 10.0, 20.0];
/// Length of the state observation: offset, sin/cos heading error, speed, 3 curvatures.
pub const STATE_DIM: usize = 4 + LOOKAHEAD_M.len();

/// Side of the square area the image shows (m).
pub const VIEW_M: f64 = 24.0;
/// The car's centre is this fraction of the image height from the top (bottom third).
const EGO_ROW_FRACTION: f64 = 0.7;
/// Car footprint drawn in the image (m).
const CAR_LENGTH: f64 = 4.0;
const CAR_WIDTH: f64 = 1.8;
/// Centre marking: half-width (m, at least ~0.75 px so the line never breaks) and dash pattern
/// in centreline samples (3 m painted, 3 m gap).
const MARK_HALF_WIDTH: f64 = 0.1;
const DASH_SAMPLES: usize = 6;
/// Pixel values.
pub const GRASS: u8 = 40;
pub const ROAD: u8 = 110;
pub const MARKING: u8 = 200;
pub const CAR: u8 = 255;

/// Nearest-point search window around the previous index, in samples. The car moves at most
/// `V_MAX * DT` = 2 m = 4 samples per step.
const SEARCH_BACK: usize = 4;
const SEARCH_AHEAD: usize = 8;

/// The largest change of the centreline position `s` one step can book (m). The new projection's
/// nearest point lies within the search window around the previous one, and a projection lies on a
/// segment next to its nearest point, so `s` moves at most `SEARCH_AHEAD + 2` samples forward and
/// `SEARCH_BACK + 2` back, whatever the geometry. (The car itself covers at most `V_MAX * DT` = 2 m,
/// about 2.14 m of centreline on the inside of the tightest bend at the lane's edge.)
const MAX_PROGRESS: f64 = (if SEARCH_AHEAD > SEARCH_BACK {
    SEARCH_AHEAD
} else {
    SEARCH_BACK
} + 2) as f64
    * ROAD_DS;

/// The largest |reward| of one step, before `reward_scale`: 10, the off-road penalty. A step on
/// the road earns at most `MAX_PROGRESS` (5 m) of progress, or loses that much plus at most
/// `LATERAL_PENALTY * LANE_HALF_WIDTH²` (0.4: the offset is within the lane, or the step is the
/// off-road one) plus at most `SPEED_PENALTY` (2: the speed stays in `[0, V_MAX]` and
/// `V_MAX = 2 * TARGET_SPEED`, so the relative speed error is within ±1), 7.4 in all.
pub const REWARD_BOUND: f64 = {
    let speed_err = (V_MAX - TARGET_SPEED) / TARGET_SPEED;
    let speed = SPEED_PENALTY
        * if speed_err * speed_err > 1.0 {
            speed_err * speed_err
        } else {
            1.0
        };
    let on_road = MAX_PROGRESS + LATERAL_PENALTY * LANE_HALF_WIDTH * LANE_HALF_WIDTH + speed;
    let off_road = -OFFROAD_PENALTY;
    if on_road > off_road {
        on_road
    } else {
        off_road
    }
};
/// Centreline samples drawn on each side of the car's index. Everything in view lies within
/// ~20.6 m of the car (the far corners) plus the road half-width; with curvature radius >= 30 m
/// that is under 26 m of arc, so 28 m is enough.
const RENDER_SAMPLES: usize = 56;
/// Points kept behind the car when old ones are dropped, and the backlog that triggers a drop.
const KEEP_BEHIND: usize = 128;
const TRIM_BACKLOG: usize = 2048;

/// One sinusoid of the curvature profile: `amp * sin(k * s + phase)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sine {
    /// Amplitude (1/m).
    amp: f64,
    /// Wavenumber `2 pi / wavelength` (rad/m).
    k: f64,
    /// Phase (rad).
    phase: f64,
}

/// A centreline point.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RoadPoint {
    x: f64,
    y: f64,
    /// Tangent direction (rad), integrated, never wrapped.
    heading: f64,
}

/// The centreline, generated lazily: point `i` (global index) is at arc length `i * ROAD_DS`.
#[derive(Debug, Clone)]
struct Road {
    sines: [Sine; N_SINES],
    /// Global index of `pts[0]` (points before it were dropped).
    first: usize,
    pts: Vec<RoadPoint>,
}

impl Road {
    fn new(sines: [Sine; N_SINES]) -> Self {
        Self {
            sines,
            first: 0,
            pts: vec![RoadPoint {
                x: 0.0,
                y: 0.0,
                heading: 0.0,
            }],
        }
    }

    /// Random road: amplitudes `U[-1, 1] * KAPPA_MAX / N_SINES` (so `|kappa| <= KAPPA_MAX`),
    /// wavelengths `U[WAVELENGTH_M]`, phases `U[0, 2 pi)`.
    fn random(rng: &mut ChaCha8Rng) -> Self {
        let sines = std::array::from_fn(|_| Sine {
            amp: rng.gen_range(-1.0..=1.0) * KAPPA_MAX / N_SINES as f64,
            k: 2.0 * PI / rng.gen_range(WAVELENGTH_M.0..WAVELENGTH_M.1),
            phase: rng.gen_range(0.0..2.0 * PI),
        });
        Self::new(sines)
    }

    /// Curvature (1/m, positive turns left) at arc length `s` (m).
    fn kappa(&self, s: f64) -> f64 {
        let ramp = ((s - STRAIGHT_END) / (RAMP_END - STRAIGHT_END)).clamp(0.0, 1.0);
        let ramp = ramp * ramp * (3.0 - 2.0 * ramp);
        if ramp == 0.0 {
            return 0.0;
        }
        ramp * self
            .sines
            .iter()
            .map(|w| w.amp * (w.k * s + w.phase).sin())
            .sum::<f64>()
    }

    /// One past the last generated global index.
    fn end(&self) -> usize {
        self.first + self.pts.len()
    }

    /// Generates points up to global index `i` (midpoint rule on heading and position, so the
    /// points depend only on the road, not on when they are generated).
    fn ensure(&mut self, i: usize) {
        while self.end() <= i {
            let n = self.end() - 1;
            let p = self.pts[self.pts.len() - 1];
            let s = n as f64 * ROAD_DS;
            let dh = self.kappa(s + 0.5 * ROAD_DS) * ROAD_DS;
            let mid = p.heading + 0.5 * dh;
            self.pts.push(RoadPoint {
                x: p.x + mid.cos() * ROAD_DS,
                y: p.y + mid.sin() * ROAD_DS,
                heading: p.heading + dh,
            });
        }
    }

    /// Drops points far behind global index `i` once enough have piled up (amortised O(1)).
    fn trim_behind(&mut self, i: usize) {
        let keep_from = i.saturating_sub(KEEP_BEHIND);
        if keep_from >= self.first + TRIM_BACKLOG {
            let n = keep_from - self.first;
            self.pts.drain(..n);
            self.first = keep_from;
        }
    }

    /// Point at global index `i`, which must be generated and not dropped.
    fn pt(&self, i: usize) -> RoadPoint {
        self.pts[i - self.first]
    }
}

/// Where the car is relative to the centreline.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Projection {
    /// Global index of the nearest centreline point.
    idx: usize,
    /// Arc length of the car's projection onto the centreline (m).
    s: f64,
    /// Signed lateral offset (m), positive to the left of the driving direction.
    offset: f64,
    /// Road heading at the projection (rad).
    heading: f64,
}

/// Projects `(x, y)` onto the centreline, searching the nearest point in a small window around
/// `hint`: O(1) per step. Points up to `hint + SEARCH_AHEAD + 1` must be generated.
fn project(road: &Road, x: f64, y: f64, hint: usize) -> Projection {
    let lo = hint.saturating_sub(SEARCH_BACK).max(road.first);
    let hi = hint + SEARCH_AHEAD;
    let d2 = |i: usize| {
        let p = road.pt(i);
        (p.x - x).powi(2) + (p.y - y).powi(2)
    };
    // First minimum on ties: deterministic.
    let mut j = lo;
    let mut best = d2(lo);
    for i in lo + 1..=hi {
        let d = d2(i);
        if d < best {
            best = d;
            j = i;
        }
    }
    // The projection lies on the segment after the nearest point, or the one before it.
    let param = |a: usize| {
        let (p, q) = (road.pt(a), road.pt(a + 1));
        let (dx, dy) = (q.x - p.x, q.y - p.y);
        ((x - p.x) * dx + (y - p.y) * dy) / (dx * dx + dy * dy)
    };
    let t_next = param(j);
    let (seg, t) = if t_next >= 0.0 || j == road.first {
        (j, t_next.clamp(0.0, 1.0))
    } else {
        (j - 1, param(j - 1).clamp(0.0, 1.0))
    };
    let (p, q) = (road.pt(seg), road.pt(seg + 1));
    let (dx, dy) = (q.x - p.x, q.y - p.y);
    let (px, py) = (p.x + t * dx, p.y + t * dy);
    let offset = (dx * (y - py) - dy * (x - px)) / (dx * dx + dy * dy).sqrt();
    Projection {
        idx: j,
        s: (seg as f64 + t) * ROAD_DS,
        offset,
        heading: p.heading + t * (q.heading - p.heading),
    }
}

/// The car's kinematic state.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Car {
    x: f64,
    y: f64,
    /// Heading (rad), never wrapped.
    psi: f64,
    /// Speed (m/s), in `[0, V_MAX]`.
    v: f64,
}

/// `a` wrapped into `(-pi, pi]`.
fn wrap_angle(a: f64) -> f64 {
    a.sin().atan2(a.cos())
}

/// Ego-frame geometry of the image, fixed by its side.
#[derive(Debug, Clone, Copy)]
struct View {
    side: usize,
    /// Pixels per metre.
    ppm: f64,
    /// The car's centre in pixel coordinates (col, row).
    ego: (f64, f64),
}

impl View {
    fn new(side: usize) -> Self {
        let s = side as f64;
        Self {
            side,
            ppm: s / VIEW_M,
            ego: (s / 2.0, EGO_ROW_FRACTION * s),
        }
    }

    /// The car rectangle `(x0, y0, x1, y1)` in pixel coordinates: always at the same place,
    /// long axis vertical (the car points up).
    fn car_rect(&self) -> (f64, f64, f64, f64) {
        let (hw, hl) = (0.5 * CAR_WIDTH * self.ppm, 0.5 * CAR_LENGTH * self.ppm);
        (
            self.ego.0 - hw,
            self.ego.1 - hl,
            self.ego.0 + hw,
            self.ego.1 + hl,
        )
    }
}

/// Draws the ego-centred top-down view into `img`: grass, road (discs of the road half-width
/// stamped at the centreline samples near the car), dashed centre marking, then the car.
fn render(road: &Road, car: &Car, idx: usize, view: &View, img: &mut [u8]) {
    let side = view.side;
    img.fill(GRASS);
    let (c, s) = (car.psi.cos(), car.psi.sin());
    // World -> image: forward is up, left is left.
    let to_img = |p: RoadPoint| {
        let (dx, dy) = (p.x - car.x, p.y - car.y);
        let fwd = dx * c + dy * s;
        let left = -dx * s + dy * c;
        (view.ego.0 - left * view.ppm, view.ego.1 - fwd * view.ppm)
    };
    let lo = idx.saturating_sub(RENDER_SAMPLES).max(road.first);
    let hi = idx + RENDER_SAMPLES;
    let r_road = LANE_HALF_WIDTH * view.ppm;
    for i in lo..=hi {
        let (x, y) = to_img(road.pt(i));
        fill_disc(img, side, x, y, r_road, ROAD);
    }
    let r_mark = (MARK_HALF_WIDTH * view.ppm).max(0.75);
    for i in lo..hi {
        // Dashes are anchored to the road, so they scroll past as the car drives.
        if (i / DASH_SAMPLES).is_multiple_of(2) && (i + 1) / DASH_SAMPLES == i / DASH_SAMPLES {
            let (a, b) = (to_img(road.pt(i)), to_img(road.pt(i + 1)));
            fill_capsule(img, side, a, b, r_mark, MARKING);
        }
    }
    let (x0, y0, x1, y1) = view.car_rect();
    fill_rect(img, side, x0, y0, x1, y1, CAR);
}

/// Lane keeping with a kinematic bicycle on a procedurally curving road.
///
/// Actions: `[steer, throttle/brake]` in `[-1, 1]²`. Observations:
/// - `ObsKind::Pixels`: `frame_stack` ego-centred top-down frames of `image_size²` pixels
///   covering `VIEW_M x VIEW_M`, car heading up, car centre at `EGO_ROW_FRACTION` of the height;
///   grass `GRASS`, road `ROAD`, dashed centre line `MARKING`, car `CAR`.
/// - `ObsKind::State` (`STATE_DIM` values): lateral offset / `LANE_HALF_WIDTH`, sin and cos of
///   the heading error, speed / `V_MAX`, and the road curvature `LOOKAHEAD_M` metres ahead of the
///   car's projection, divided by `KAPPA_MAX` (so in `[-1, 1]`).
#[derive(Debug, Clone)]
pub struct LaneKeep {
    rng: ChaCha8Rng,
    road: Road,
    car: Car,
    proj: Projection,
    steps: usize,
    max_episode_steps: usize,
    reward_scale: f64,
    view: View,
    /// `Some` for pixel observations.
    pixels: Option<PixelObs>,
}

impl LaneKeep {
    /// A lane-keep env per `cfg` (its `kind` is ignored), seeded with 0 until the first
    /// `reset(Some(seed))`. It is already on a (straight) road, but call `reset` first.
    pub fn new(cfg: &EnvConfig) -> Result<Self, EnvError> {
        validate(cfg)?;
        let side = cfg.image_size.max(1);
        let zero = Sine {
            amp: 0.0,
            k: 0.0,
            phase: 0.0,
        };
        let mut env = Self {
            rng: ChaCha8Rng::seed_from_u64(0),
            road: Road::new([zero; N_SINES]),
            car: Car {
                x: 0.0,
                y: 0.0,
                psi: 0.0,
                v: 0.0,
            },
            proj: Projection {
                idx: 0,
                s: 0.0,
                offset: 0.0,
                heading: 0.0,
            },
            steps: 0,
            max_episode_steps: cfg.time_limit(),
            reward_scale: cfg.reward_scale,
            view: View::new(side),
            pixels: match cfg.obs {
                ObsKind::Pixels => Some(PixelObs::new(cfg.image_size, cfg.frame_stack)),
                ObsKind::State => None,
            },
        };
        env.start_episode(Road::new([zero; N_SINES]));
        Ok(env)
    }

    /// Puts the car at the start of `road` and returns the first observation.
    fn start_episode(&mut self, road: Road) -> Observation {
        self.road = road;
        let idx = (START_S / ROAD_DS).round() as usize;
        self.road.ensure(idx + RENDER_SAMPLES + SEARCH_AHEAD + 1);
        let p = self.road.pt(idx);
        self.car = Car {
            x: p.x,
            y: p.y,
            psi: p.heading,
            v: START_SPEED,
        };
        self.proj = project(&self.road, p.x, p.y, idx);
        self.steps = 0;
        self.observe(true)
    }

    fn state_obs(&self) -> Vec<f32> {
        let herr = self.car.psi - self.proj.heading;
        let mut o = vec![
            (self.proj.offset / LANE_HALF_WIDTH) as f32,
            herr.sin() as f32,
            herr.cos() as f32,
            (self.car.v / V_MAX) as f32,
        ];
        for d in LOOKAHEAD_M {
            o.push((self.road.kappa(self.proj.s + d) / KAPPA_MAX) as f32);
        }
        o
    }

    fn observe(&mut self, new_episode: bool) -> Observation {
        match &mut self.pixels {
            None => Observation::State(self.state_obs()),
            Some(p) => {
                render(
                    &self.road,
                    &self.car,
                    self.proj.idx,
                    &self.view,
                    p.frame_mut(),
                );
                if new_episode {
                    p.reset()
                } else {
                    p.push()
                }
            }
        }
    }

    /// Lateral offset from the centreline (m, positive left) after the last step or reset.
    pub fn lateral_offset(&self) -> f64 {
        self.proj.offset
    }

    /// Heading error relative to the road (rad, in `(-pi, pi]`, positive = pointing left of it).
    pub fn heading_error(&self) -> f64 {
        wrap_angle(self.car.psi - self.proj.heading)
    }

    /// Speed (m/s).
    pub fn speed(&self) -> f64 {
        self.car.v
    }
}

impl Env for LaneKeep {
    fn obs_spec(&self) -> ObsSpec {
        match &self.pixels {
            None => ObsSpec::State { dim: STATE_DIM },
            Some(p) => p.spec(),
        }
    }

    fn action_dim(&self) -> usize {
        2
    }

    fn reset(&mut self, seed: Option<u64>) -> Observation {
        if let Some(s) = seed {
            self.rng = ChaCha8Rng::seed_from_u64(s);
        }
        let road = Road::random(&mut self.rng);
        self.start_episode(road)
    }

    fn step(&mut self, action: &[f32]) -> Step {
        assert_eq!(action.len(), 2, "lane-keep takes a 2-d action");
        let steer = unit_action(action[0]) * MAX_STEER;
        let accel = unit_action(action[1]) * MAX_ACCEL;
        // Kinematic bicycle, semi-implicit Euler: speed first, then the pose with the new speed.
        let car = &mut self.car;
        car.v = (car.v + accel * DT).clamp(0.0, V_MAX);
        car.x += car.v * car.psi.cos() * DT;
        car.y += car.v * car.psi.sin() * DT;
        car.psi += car.v / WHEELBASE * steer.tan() * DT;

        let s_before = self.proj.s;
        self.proj = project(&self.road, car.x, car.y, self.proj.idx);
        let idx = self.proj.idx;
        self.road.ensure(idx + RENDER_SAMPLES + SEARCH_AHEAD + 1);
        self.road.trim_behind(idx);

        let terminated = self.proj.offset.abs() > LANE_HALF_WIDTH;
        let raw = if terminated {
            OFFROAD_PENALTY
        } else {
            (self.proj.s - s_before)
                - LATERAL_PENALTY * self.proj.offset.powi(2)
                - speed_penalty(car.v)
        };
        self.steps += 1;
        Step {
            obs: self.observe(false),
            reward: raw * self.reward_scale,
            terminated,
            truncated: self.steps >= self.max_episode_steps,
        }
    }

    fn name(&self) -> &'static str {
        "lane-keep"
    }

    fn reward_bound(&self) -> Option<f64> {
        Some(REWARD_BOUND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvKind;

    fn cfg(obs: ObsKind, side: usize) -> EnvConfig {
        EnvConfig {
            kind: EnvKind::LaneKeep,
            obs,
            image_size: side,
            frame_stack: 3,
            max_episode_steps: Some(1000),
            reward_scale: 1.0,
            ..EnvConfig::default()
        }
    }

    fn straight() -> Road {
        Road::new(
            [Sine {
                amp: 0.0,
                k: 0.0,
                phase: 0.0,
            }; N_SINES],
        )
    }

    /// A left-hand bend of constant curvature `KAPPA_MAX` after the ramp (sin(0 * s + pi/2) = 1).
    fn left_bend() -> Road {
        let mut sines = [Sine {
            amp: 0.0,
            k: 0.0,
            phase: 0.0,
        }; N_SINES];
        sines[0] = Sine {
            amp: KAPPA_MAX,
            k: 0.0,
            phase: PI / 2.0,
        };
        Road::new(sines)
    }

    fn pixels(o: Observation) -> Vec<u8> {
        match o {
            Observation::Pixels(p) => p,
            Observation::State(_) => panic!("pixel obs expected"),
        }
    }

    /// Brute-force projection over every generated point, to check the windowed search.
    fn brute_offset(road: &Road, x: f64, y: f64) -> f64 {
        let best = (road.first..road.end() - 1)
            .min_by(|&a, &b| {
                let da = (road.pt(a).x - x).powi(2) + (road.pt(a).y - y).powi(2);
                let db = (road.pt(b).x - x).powi(2) + (road.pt(b).y - y).powi(2);
                da.total_cmp(&db)
            })
            .unwrap();
        project(road, x, y, best).offset
    }

    /// A steering controller that follows the road: curvature feed-forward, heading and offset
    /// feedback (Stanley-like). Returns the unit action.
    fn follow(env: &LaneKeep, throttle: f32) -> [f32; 2] {
        let kappa = env.road.kappa(env.proj.s + 1.0);
        let delta = (WHEELBASE * kappa).atan()
            - env.heading_error()
            - (2.0 * env.lateral_offset() / env.speed().max(1.0)).atan();
        [(delta / MAX_STEER) as f32, throttle]
    }

    #[test]
    fn road_is_smooth_bounded_and_starts_straight() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            let mut road = Road::random(&mut rng);
            road.ensure(4000);
            for i in 0..4000 {
                let (p, q) = (road.pt(i), road.pt(i + 1));
                let chord = ((q.x - p.x).powi(2) + (q.y - p.y).powi(2)).sqrt();
                assert!((chord - ROAD_DS).abs() < 1e-4, "chord {chord}");
                // |d heading| <= KAPPA_MAX * ds per sample.
                assert!((q.heading - p.heading).abs() <= KAPPA_MAX * ROAD_DS + 1e-12);
                let s = i as f64 * ROAD_DS;
                assert!(road.kappa(s).abs() <= KAPPA_MAX + 1e-12);
                if s <= STRAIGHT_END {
                    assert_eq!((p.y, p.heading), (0.0, 0.0), "not straight at s = {s}");
                }
            }
        }
    }

    #[test]
    fn lazy_generation_equals_eager_and_trimming_bounds_memory() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut eager = Road::random(&mut rng);
        let mut lazy = eager.clone();
        eager.ensure(10_000);
        for i in (0..10_000).step_by(37) {
            lazy.ensure(i + 5);
            lazy.trim_behind(i);
            assert_eq!(lazy.pt(i), eager.pt(i));
            assert!(lazy.pts.len() <= KEEP_BEHIND + TRIM_BACKLOG + 64);
        }
        assert!(lazy.first > 0, "nothing was trimmed");
    }

    #[test]
    fn zero_steer_on_a_straight_road_stays_centred_and_progresses() {
        let mut env = LaneKeep::new(&cfg(ObsKind::State, 48)).unwrap();
        env.start_episode(straight());
        for t in 1..=300 {
            let s = env.step(&[0.0, 0.0]);
            assert!(!s.terminated, "step {t}");
            assert_eq!(env.lateral_offset(), 0.0);
            // Progress = v * dt = 0.8 m at the constant start speed, no offset penalty,
            // minus 2 * ((8 - 10) / 10)^2 = 0.08 for being under the target speed.
            assert!((s.reward - 0.72).abs() < 1e-9, "{}", s.reward);
        }
        // Full throttle saturates at V_MAX (2 m per step), full brake stops the car (0 progress).
        for _ in 0..60 {
            env.step(&[0.0, 1.0]);
        }
        assert_eq!(env.speed(), V_MAX);
        // 2 m of progress minus 2 * ((20 - 10) / 10)^2 = 2: flat out earns nothing.
        assert!(env.step(&[0.0, 1.0]).reward.abs() < 1e-9);
        for _ in 0..60 {
            env.step(&[0.0, -1.0]);
        }
        assert_eq!(env.speed(), 0.0);
        // Standing still: no progress, and the full speed penalty 2 * 1^2.
        assert_eq!(env.step(&[0.0, -1.0]).reward, -2.0);
    }

    #[test]
    fn zero_steer_in_a_bend_drifts_off_and_terminates_consistently() {
        let mut env = LaneKeep::new(&cfg(ObsKind::State, 48)).unwrap();
        env.start_episode(left_bend());
        let mut prev_s = env.proj.s;
        let mut ended = None;
        for t in 1..=200 {
            let s = env.step(&[0.0, 0.0]);
            let off = env.lateral_offset();
            assert_eq!(
                s.terminated,
                off.abs() > LANE_HALF_WIDTH,
                "step {t} offset {off}"
            );
            // Cross-check the windowed projection against a brute-force search.
            assert!((off - brute_offset(&env.road, env.car.x, env.car.y)).abs() < 1e-9);
            if s.terminated {
                assert_eq!(s.reward, OFFROAD_PENALTY);
                // The road bends left, the car goes straight: it leaves on the right.
                assert!(off < -LANE_HALF_WIDTH);
                ended = Some(t);
                break;
            }
            let expect =
                (env.proj.s - prev_s) - LATERAL_PENALTY * off * off - speed_penalty(env.speed());
            assert!((s.reward - expect).abs() < 1e-12);
            assert!(
                off <= 1e-12,
                "drifting to the outside of a left bend, offset {off}"
            );
            prev_s = env.proj.s;
        }
        // Straight road until s = 40, bend fading in until 70: the car (from s = 30 at 0.8 m per
        // step) must be off within ~30 m of the ramp, i.e. well before step 100.
        let t = ended.expect("never left the road");
        assert!((15..100).contains(&t), "left the road at step {t}");
    }

    #[test]
    fn steering_hard_leaves_the_road_with_the_penalty() {
        let mut c = cfg(ObsKind::State, 48);
        c.reward_scale = 3.0;
        for (seed, steer) in [(0, 1.0), (1, -1.0), (2, 1.0)] {
            let mut env = LaneKeep::new(&c).unwrap();
            env.reset(Some(seed));
            let mut last = None;
            for t in 1..=30 {
                let s = env.step(&[steer, 0.0]);
                if s.terminated {
                    last = Some((t, s.reward));
                    break;
                }
                assert!(s.reward > OFFROAD_PENALTY * 3.0);
            }
            let (t, r) = last.expect("full steer never left the road");
            assert!(t <= 15, "full steer took {t} steps to leave the road");
            assert_eq!(r, OFFROAD_PENALTY * 3.0);
            assert!(env.lateral_offset() * f64::from(steer) > LANE_HALF_WIDTH);
        }
    }

    #[test]
    fn following_the_road_earns_positive_progress() {
        for seed in 0..6 {
            let mut env = LaneKeep::new(&cfg(ObsKind::State, 48)).unwrap();
            env.reset(Some(seed));
            let s0 = env.proj.s;
            let mut total = 0.0;
            for t in 1..=400 {
                let a = follow(&env, ((12.0 - env.speed()) / 4.0).clamp(-1.0, 1.0) as f32);
                let s = env.step(&a);
                assert!(!s.terminated, "seed {seed}: off the road at step {t}");
                assert!(s.reward > 0.0, "seed {seed} step {t}: reward {}", s.reward);
                let off = env.lateral_offset();
                assert!(off.abs() < 0.5, "seed {seed} step {t}: offset {off}");
                assert!(
                    (env.lateral_offset() - brute_offset(&env.road, env.car.x, env.car.y)).abs()
                        < 1e-9
                );
                total += s.reward;
            }
            // The rewards add up to the distance covered along the road minus the penalties:
            // offsets stay tiny, and the speed term is 2 * ((8 - 10) / 10)^2 per step at most here.
            let dist = env.proj.s - s0;
            assert!(dist > 400.0, "seed {seed}: only {dist} m");
            assert!(
                total <= dist && total > dist - 400.0 * 0.08 - 0.01 * dist,
                "seed {seed}: {total} vs {dist}"
            );
        }
    }

    #[test]
    fn state_observation_layout() {
        let mut env = LaneKeep::new(&cfg(ObsKind::State, 48)).unwrap();
        env.start_episode(left_bend());
        let Observation::State(o) = env.state_obs_as_observation() else {
            unreachable!()
        };
        // Centred, aligned, start speed, straight road around the start: the curvatures 5 and 10 m
        // ahead (s = 35, 40) are 0; 20 m ahead (s = 50) the bend is 1/3 faded in:
        // smoothstep(1/3) = 3/9 - 2/27 = 7/27.
        assert_eq!(o.len(), STATE_DIM);
        assert_eq!(
            &o[..6],
            &[0.0, 0.0, 1.0, (START_SPEED / V_MAX) as f32, 0.0, 0.0]
        );
        assert!((o[6] - 7.0 / 27.0).abs() < 1e-6, "{}", o[6]);
        // Steering left: positive heading error, then a positive (left) offset.
        for _ in 0..5 {
            env.step(&[1.0, 0.0]);
        }
        let Observation::State(o) = env.state_obs_as_observation() else {
            unreachable!()
        };
        assert!(o[1] > 0.0 && o[0] > 0.0, "{o:?}");
        assert_eq!(o[0], (env.lateral_offset() / LANE_HALF_WIDTH) as f32);
    }

    impl LaneKeep {
        fn state_obs_as_observation(&self) -> Observation {
            Observation::State(self.state_obs())
        }
    }

    /// The pixel indices the car rectangle covers at `side` (all values CAR, nothing else is).
    fn car_pixels(side: usize) -> Vec<usize> {
        let mut img = vec![0u8; side * side];
        let (x0, y0, x1, y1) = View::new(side).car_rect();
        fill_rect(&mut img, side, x0, y0, x1, y1, 1);
        (0..side * side).filter(|&i| img[i] == 1).collect()
    }

    #[test]
    fn car_rectangle_is_where_it_should_be() {
        // 48 px over 24 m: 2 px/m; car centre at (24, 33.6); 1.8 x 4 m -> 3.6 x 8 px:
        // columns with centres in [22.2, 25.8] (22..=25), rows in [29.6, 37.6] (30..=37).
        let expect: Vec<usize> = (30..=37)
            .flat_map(|r| (22..=25).map(move |c| r * 48 + c))
            .collect();
        assert_eq!(car_pixels(48), expect);
    }

    #[test]
    fn image_has_the_right_size_values_and_fixed_car() {
        for side in [32, 48, 84] {
            let mut env = LaneKeep::new(&cfg(ObsKind::Pixels, side)).unwrap();
            let n = side * side;
            let car = car_pixels(side);
            assert!(!car.is_empty());
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let mut obs = pixels(env.reset(Some(side as u64)));
            for t in 0..150 {
                assert_eq!(obs.len(), 3 * n);
                let frame = &obs[2 * n..];
                let cars: Vec<usize> = (0..n).filter(|&i| frame[i] == CAR).collect();
                assert_eq!(cars, car, "side {side} step {t}: car pixels moved");
                assert!(frame
                    .iter()
                    .all(|v| [GRASS, ROAD, MARKING, CAR].contains(v)));
                for v in [GRASS, ROAD, MARKING] {
                    assert!(
                        frame.contains(&v),
                        "side {side} step {t}: no pixel of value {v}"
                    );
                }
                let a = follow(&env, 0.2);
                let a = [a[0] + rng.gen_range(-0.2..0.2), a[1]];
                let s = env.step(&a);
                assert!(!s.terminated);
                obs = pixels(s.obs);
            }
        }
    }

    #[test]
    fn image_shows_the_road_ahead_and_grass_beside() {
        // Straight road, centred car: the road band is 4 m = 8 px wide at 48 px (columns with
        // centres within 4 px of column 24: 20..=27), grass outside it, all the way up.
        let side = 48;
        let mut env = LaneKeep::new(&cfg(ObsKind::Pixels, side)).unwrap();
        let frame = pixels(env.start_episode(straight()))[..side * side].to_vec();
        for row in 0..side {
            for col in 0..side {
                let v = frame[row * side + col];
                if (20..=27).contains(&col) {
                    assert_ne!(v, GRASS, "({col}, {row})");
                } else {
                    assert_eq!(v, GRASS, "({col}, {row})");
                }
            }
        }
        // The centre line is dashed: in the column just left of the centre, above the car, both
        // marking and road pixels appear.
        let col: Vec<u8> = (0..28).map(|row| frame[row * side + 23]).collect();
        assert!(col.contains(&MARKING) && col.contains(&ROAD), "{col:?}");
    }

    #[test]
    fn a_left_bend_curves_left_in_the_image() {
        let side = 48;
        let mut env = LaneKeep::new(&cfg(ObsKind::Pixels, side)).unwrap();
        env.start_episode(left_bend());
        let mut obs = Vec::new();
        // Follow the road well into the constant-curvature part (radius 30 m).
        while env.proj.s < 90.0 {
            let s = env.step(&follow(&env, 0.0));
            assert!(!s.terminated);
            obs = pixels(s.obs);
        }
        let frame = &obs[2 * side * side..];
        // Mean column of the road in the top rows (~16 m ahead): a 30 m radius bend has moved
        // 16^2 / 60 = 4.3 m = 8.5 px to the left by then; at the car's rows it is centred.
        let road_col = |row: usize| {
            let cols: Vec<f64> = (0..side)
                .filter(|&c| frame[row * side + c] != GRASS)
                .map(|c| c as f64 + 0.5)
                .collect();
            cols.iter().sum::<f64>() / cols.len() as f64
        };
        let top = road_col(1);
        assert!(
            top < 24.0 - 5.0,
            "road at the top is centred at column {top}"
        );
        let at_car = road_col(40);
        assert!(
            (at_car - 24.0).abs() < 1.5,
            "road at the car is at column {at_car}"
        );
    }

    #[test]
    fn frames_stack_and_scroll() {
        let side = 48;
        let n = side * side;
        let mut env = LaneKeep::new(&cfg(ObsKind::Pixels, side)).unwrap();
        let o0 = pixels(env.reset(Some(2)));
        assert_eq!(&o0[..n], &o0[n..2 * n]);
        assert_eq!(&o0[..n], &o0[2 * n..]);
        let o1 = pixels(env.step(&[0.0, 0.0]).obs);
        let mut expect = vec![0u8; n];
        render(&env.road, &env.car, env.proj.idx, &env.view, &mut expect);
        assert_eq!(
            &o1[2 * n..],
            &expect[..],
            "the last frame is the current view"
        );
        // Driving 0.8 m moves the dashes by 1.6 px: the new frame differs.
        assert_ne!(&o1[2 * n..], &o0[2 * n..]);
        assert_eq!(&o1[..2 * n], &o0[n..]);
        let o2 = pixels(env.step(&[0.0, 0.0]).obs);
        assert_eq!(&o2[..2 * n], &o1[n..]);
    }

    #[test]
    fn long_episodes_keep_memory_bounded() {
        let mut c = cfg(ObsKind::Pixels, 32);
        c.max_episode_steps = Some(100_000);
        let mut env = LaneKeep::new(&c).unwrap();
        env.start_episode(straight());
        for _ in 0..6000 {
            let s = env.step(&[0.0, 1.0]);
            assert!(!s.terminated);
        }
        // ~12 km at 2 m per step = ~24k samples generated, only a bounded window kept.
        assert!(env.proj.s > 11_000.0);
        assert!(env.road.first > 0 && env.road.pts.len() < KEEP_BEHIND + TRIM_BACKLOG + 100);
        assert!(env.step(&[0.0, 1.0]).reward.abs() < 1e-6);
    }
}
