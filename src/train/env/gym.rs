//! Any Gymnasium environment with a Box action space, run in a Python child process.
//!
//! Each [`GymEnv`] spawns one `python/gym_bridge.py` (embedded in the binary) with the project's
//! `.venv` Python and talks to it over stdin/stdout with length-prefixed binary messages; the
//! script's docstring describes the framing. Observations travel as raw bytes: uint8 images
//! (H x W x C) are converted to grayscale, resized to `env.image_size` and frame-stacked here
//! (the same [`PixelObs`] the built-in envs use); anything else becomes a float32 state vector.
//!
//! Semantics kept from Gymnasium: `reset(seed=...)`, `terminated` vs `truncated` (the trainer
//! bootstraps through truncation), and the time limit (`env.max_episode_steps` is passed to
//! `gymnasium.make`, replacing the registered limit). Actions in `[-1, 1]` are mapped linearly
//! onto the Box bounds.
//!
//! Failures: problems while making the env (gymnasium missing, unknown id, a discrete action
//! space) are [`EnvError::Gym`] from [`GymEnv::new`], before any training. Once running, an env
//! that raises or a bridge that dies cannot be reported through [`Env::step`]; the env then
//! answers with terminal zero-observation steps and [`Env::failure`] returns the Python traceback
//! (or the bridge's last stderr lines), which the trainer turns into a `crashed` run.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::stack::PixelObs;
use super::{unit_action, validate, Env, EnvError, ObsSpec, Observation, Step};
use crate::config::{EnvConfig, ObsKind};

/// The bridge program, embedded so that the binary works wherever it is copied to.
pub const BRIDGE_SOURCE: &str = include_str!("../../../python/gym_bridge.py");

/// Environment variable naming the Python interpreter that runs the bridge.
pub const PYTHON_ENV_VAR: &str = "TD3_SWEEP_PYTHON";

/// Lines of the bridge's stderr kept for the crash report when the process dies unannounced.
const STDERR_TAIL_LINES: usize = 40;

/// Largest message accepted from the bridge (a 4K RGB frame is 25 MB).
const MAX_MESSAGE: usize = 256 << 20;

/// How long a closing bridge may take to exit after its stdin closes before it is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The interpreter for the bridge: `$TD3_SWEEP_PYTHON`, else the project's `.venv/bin/python`
/// (found through the source tree this binary was built from), else `python3` on the `PATH`.
pub fn python_path() -> PathBuf {
    if let Some(p) = std::env::var_os(PYTHON_ENV_VAR).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

#[derive(serde::Deserialize)]
struct Handshake {
    obs: ObsInfo,
    action: ActionInfo,
}

#[derive(serde::Deserialize)]
struct ObsInfo {
    shape: Vec<usize>,
    encoding: String,
    image: bool,
}

#[derive(serde::Deserialize)]
struct ActionInfo {
    low: Vec<f64>,
    high: Vec<f64>,
}

#[derive(serde::Deserialize)]
struct BridgeError {
    error: String,
    #[serde(default)]
    traceback: String,
}

/// How the bridge's raw observation bytes become an [`Observation`].
#[derive(Debug)]
enum Decode {
    /// `h x w x c` u8 image → grayscale → `side x side` → frame stack.
    Image {
        h: usize,
        w: usize,
        c: usize,
        stack: PixelObs,
    },
    /// `dim` little-endian f32 values.
    State { dim: usize },
}

/// A Gymnasium env behind a `gym_bridge.py` child process.
#[derive(Debug)]
pub struct GymEnv {
    id: String,
    child: Child,
    /// `None` once closed.
    tx: Option<BufWriter<ChildStdin>>,
    rx: BufReader<ChildStdout>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    low: Vec<f64>,
    high: Vec<f64>,
    decode: Decode,
    reward_scale: f64,
    /// `env.reward_bound`: what the user declares, as Gymnasium envs declare none.
    reward_bound: Option<f64>,
    failure: Option<String>,
}

/// Writes one length-prefixed message.
fn write_msg(w: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    let n = u32::try_from(payload.len()).map_err(|_| std::io::Error::other("message too long"))?;
    w.write_all(&n.to_le_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

/// Reads one length-prefixed message; `Ok(None)` at a clean end of stream.
fn read_msg(r: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = u32::from_le_bytes(len) as usize;
    if n == 0 || n > MAX_MESSAGE {
        return Err(std::io::Error::other(format!(
            "bad message length {n} from the bridge"
        )));
    }
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// `error` plus the traceback, as the bridge's `E` message carries them.
fn bridge_error(payload: &[u8]) -> String {
    match serde_json::from_slice::<BridgeError>(payload) {
        Ok(e) if e.traceback.trim().is_empty() || e.traceback.trim() == "NoneType: None" => e.error,
        Ok(e) => format!("{}\n{}", e.error, e.traceback.trim_end()),
        Err(_) => String::from_utf8_lossy(payload).into_owned(),
    }
}

/// ITU-R BT.601 luma (what PIL's `convert("L")` and OpenCV's `COLOR_RGB2GRAY` use), rounded.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b) + 500) / 1000) as u8
}

/// Converts an `h x w x c` (channels-last) u8 image to grayscale and resizes it to
/// `side x side` into `out` by area averaging: each output pixel is the mean of the source pixels
/// its footprint covers (at least one, so upscaling repeats pixels).
pub(crate) fn gray_resize(img: &[u8], h: usize, w: usize, c: usize, side: usize, out: &mut [u8]) {
    debug_assert_eq!(img.len(), h * w * c);
    debug_assert_eq!(out.len(), side * side);
    let gray: Vec<u8> = if c >= 3 {
        img.chunks_exact(c)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect()
    } else {
        // One channel (or gray + alpha): the first channel is the intensity.
        img.chunks_exact(c).map(|p| p[0]).collect()
    };
    let span = |o: usize, n: usize| {
        let a = o * n / side;
        let b = ((o + 1) * n / side).max(a + 1).min(n);
        (a, b)
    };
    for oy in 0..side {
        let (y0, y1) = span(oy, h);
        for ox in 0..side {
            let (x0, x1) = span(ox, w);
            let mut sum = 0u32;
            for y in y0..y1 {
                sum += gray[y * w + x0..y * w + x1]
                    .iter()
                    .map(|&v| u32::from(v))
                    .sum::<u32>();
            }
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            out[oy * side + ox] = ((sum + n / 2) / n) as u8;
        }
    }
}

impl GymEnv {
    /// Starts a bridge for `cfg.id` and reads its handshake. Errors (gymnasium or the id missing,
    /// a non-Box action space, an image env with `obs: state` or the reverse) name the cause.
    pub fn new(cfg: &EnvConfig) -> Result<GymEnv, EnvError> {
        validate(cfg)?;
        let id = cfg.id.clone().unwrap_or_default();
        let err = |message: String| EnvError::Gym {
            id: id.clone(),
            message,
        };
        if id.is_empty() {
            return Err(err("env.id is required for kind `gymnasium`".into()));
        }
        let request = serde_json::json!({
            "id": id,
            "kwargs": cfg.kwargs,
            "max_episode_steps": cfg.max_episode_steps,
        });
        let python = python_path();
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(BRIDGE_SOURCE)
            .arg(request.to_string())
            .env("PYGAME_HIDE_SUPPORT_PROMPT", "1")
            .env("SDL_VIDEODRIVER", "dummy")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                err(format!(
                    "cannot start the bridge with `{}`: {e} (run `just setup`, or set {PYTHON_ENV_VAR})",
                    python.display()
                ))
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err(err("the bridge's pipes could not be opened".into()));
        };
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = stderr_tail.clone();
        // Forward the bridge's stderr (env warnings, tracebacks of a hard crash) into ours, so it
        // lands in the run's log, and keep the last lines for the crash report.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[gym-bridge] {line}");
                if let Ok(mut t) = tail.lock() {
                    if t.len() == STDERR_TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }
        });
        let mut env = GymEnv {
            id: id.clone(),
            child,
            tx: Some(BufWriter::new(stdin)),
            rx: BufReader::new(stdout),
            stderr_tail,
            low: Vec::new(),
            high: Vec::new(),
            decode: Decode::State { dim: 0 },
            reward_scale: cfg.reward_scale,
            reward_bound: cfg.reward_bound,
            failure: None,
        };
        let hello = match read_msg(&mut env.rx) {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => return Err(err(env.death_report("before its handshake"))),
        };
        let hs: Handshake = match hello.split_first() {
            Some((b'H', json)) => serde_json::from_slice(json)
                .map_err(|e| err(format!("unreadable handshake from the bridge: {e}")))?,
            Some((b'E', payload)) => return Err(err(bridge_error(payload))),
            _ => return Err(err("unexpected first message from the bridge".into())),
        };
        env.decode = match (hs.obs.image, cfg.obs) {
            (true, ObsKind::Pixels) => {
                let (h, w, c) = match hs.obs.shape[..] {
                    [h, w] => (h, w, 1),
                    [h, w, c] => (h, w, c),
                    _ => return Err(err(format!("image shape {:?}", hs.obs.shape))),
                };
                Decode::Image {
                    h,
                    w,
                    c,
                    stack: PixelObs::new(cfg.image_size, cfg.frame_stack),
                }
            }
            (false, ObsKind::State) => Decode::State {
                dim: hs.obs.shape.iter().product(),
            },
            (true, ObsKind::State) => {
                return Err(err(format!(
                    "its observations are {:?} uint8 images: set `env.obs: pixels`",
                    hs.obs.shape
                )))
            }
            (false, ObsKind::Pixels) => {
                return Err(err(format!(
                    "its observations are a {:?} vector, not images: set `env.obs: state`",
                    hs.obs.shape
                )))
            }
        };
        debug_assert_eq!(hs.obs.encoding, if hs.obs.image { "u8" } else { "f32" });
        if hs.action.low.is_empty() || hs.action.low.len() != hs.action.high.len() {
            return Err(err("the action space has no components".into()));
        }
        env.low = hs.action.low;
        env.high = hs.action.high;
        Ok(env)
    }

    /// The Gymnasium id this env runs.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What to report when the bridge's output ended: its exit status and last stderr lines.
    fn death_report(&mut self, when: &str) -> String {
        self.tx = None;
        let deadline = Instant::now() + CLOSE_GRACE;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => break None,
            }
        };
        // Give the stderr thread a moment to collect the last lines.
        std::thread::sleep(Duration::from_millis(50));
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        let status = status.map_or("did not exit".to_string(), |s| s.to_string());
        format!("the bridge process ended {when} ({status})\n{tail}")
            .trim_end()
            .to_string()
    }

    /// Sends a request and returns the reply's payload after the tag, or records the failure.
    fn call(&mut self, request: &[u8], want: u8) -> Option<Vec<u8>> {
        if self.failure.is_some() {
            return None;
        }
        let sent = match self.tx.as_mut() {
            Some(tx) => write_msg(tx, request).is_ok(),
            None => false,
        };
        let reply = if sent {
            read_msg(&mut self.rx).ok().flatten()
        } else {
            None
        };
        let why = match reply {
            Some(mut m) if m.first() == Some(&want) => {
                m.remove(0);
                return Some(m);
            }
            Some(m) if m.first() == Some(&b'E') => bridge_error(&m[1..]),
            Some(m) => format!("unexpected reply tag {:?} from the bridge", m.first()),
            None => self.death_report("unexpectedly"),
        };
        self.failure = Some(format!("gymnasium env `{}`: {why}", self.id));
        None
    }

    /// An observation of the right shape, all zeros: what a failed env returns.
    fn zero_obs(&self) -> Observation {
        match &self.decode {
            Decode::Image { stack, .. } => {
                Observation::Pixels(vec![0; stack.k() * stack.side() * stack.side()])
            }
            Decode::State { dim } => Observation::State(vec![0.0; *dim]),
        }
    }

    fn observe(&mut self, raw: &[u8], new_episode: bool) -> Option<Observation> {
        match &mut self.decode {
            Decode::Image { h, w, c, stack } => {
                if raw.len() != *h * *w * *c {
                    return None;
                }
                let side = stack.side();
                gray_resize(raw, *h, *w, *c, side, stack.frame_mut());
                Some(if new_episode {
                    stack.reset()
                } else {
                    stack.push()
                })
            }
            Decode::State { dim } => {
                if raw.len() != *dim * 4 {
                    return None;
                }
                Some(Observation::State(
                    raw.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ))
            }
        }
    }

    fn observe_or_fail(&mut self, raw: &[u8], new_episode: bool) -> Observation {
        match self.observe(raw, new_episode) {
            Some(o) => o,
            None => {
                self.failure = Some(format!(
                    "gymnasium env `{}`: observation of {} bytes does not match the handshake",
                    self.id,
                    raw.len()
                ));
                self.zero_obs()
            }
        }
    }
}

impl Env for GymEnv {
    fn obs_spec(&self) -> ObsSpec {
        match &self.decode {
            Decode::Image { stack, .. } => stack.spec(),
            Decode::State { dim } => ObsSpec::State { dim: *dim },
        }
    }

    fn action_dim(&self) -> usize {
        self.low.len()
    }

    fn reset(&mut self, seed: Option<u64>) -> Observation {
        let mut req = vec![b'R', u8::from(seed.is_some())];
        req.extend_from_slice(&seed.unwrap_or(0).to_le_bytes());
        match self.call(&req, b'O') {
            Some(raw) => self.observe_or_fail(&raw, true),
            None => self.zero_obs(),
        }
    }

    fn step(&mut self, action: &[f32]) -> Step {
        assert_eq!(
            action.len(),
            self.action_dim(),
            "gymnasium env `{}` takes a {}-d action",
            self.id,
            self.action_dim()
        );
        let mut req = Vec::with_capacity(1 + 4 * action.len());
        req.push(b'S');
        for ((&a, &lo), &hi) in action.iter().zip(&self.low).zip(&self.high) {
            // [-1, 1] → [low, high], linearly; the ends map exactly onto the bounds.
            let x = lo + (unit_action(a) + 1.0) * 0.5 * (hi - lo);
            req.extend_from_slice(&(x.clamp(lo, hi) as f32).to_le_bytes());
        }
        let failed = Step {
            obs: self.zero_obs(),
            reward: 0.0,
            terminated: true,
            truncated: false,
        };
        let Some(raw) = self.call(&req, b'T') else {
            return failed;
        };
        if raw.len() < 10 {
            self.failure = Some(format!("gymnasium env `{}`: short step reply", self.id));
            return failed;
        }
        let mut r = [0u8; 8];
        r.copy_from_slice(&raw[..8]);
        let reward = f64::from_le_bytes(r);
        let (terminated, truncated) = (raw[8] != 0, raw[9] != 0);
        let obs = self.observe_or_fail(&raw[10..], false);
        Step {
            obs,
            reward: reward * self.reward_scale,
            terminated,
            truncated,
        }
    }

    fn name(&self) -> &'static str {
        "gymnasium"
    }

    fn reward_bound(&self) -> Option<f64> {
        self.reward_bound
    }

    fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
}

impl Drop for GymEnv {
    /// Closes the bridge's stdin (it exits on EOF), then kills it if it lingers.
    fn drop(&mut self) {
        self.tx = None;
        let deadline = Instant::now() + CLOSE_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trip_and_clean_eof() {
        let mut buf = Vec::new();
        write_msg(&mut buf, b"Thello").unwrap();
        write_msg(&mut buf, b"O").unwrap();
        let mut r = &buf[..];
        assert_eq!(read_msg(&mut r).unwrap().unwrap(), b"Thello");
        assert_eq!(read_msg(&mut r).unwrap().unwrap(), b"O");
        assert_eq!(read_msg(&mut r).unwrap(), None);
        // A length prefix promising more than arrives is an error, not a clean end.
        let mut short = &[9u8, 0, 0, 0, 1, 2][..];
        assert!(read_msg(&mut short).is_err());
    }

    #[test]
    fn gray_resize_averages_area_and_uses_luma() {
        // 4x4 RGB: left half pure red, right half pure green → 2x2.
        let mut img = Vec::new();
        for _y in 0..4 {
            for x in 0..4 {
                img.extend_from_slice(if x < 2 { &[255, 0, 0] } else { &[0, 255, 0] });
            }
        }
        let mut out = vec![0u8; 4];
        gray_resize(&img, 4, 4, 3, 2, &mut out);
        assert_eq!(out, vec![76, 150, 76, 150]);
        // A checkerboard averages to mid-gray.
        let cb: Vec<u8> = (0..16)
            .map(|i| if (i + i / 4) % 2 == 0 { 255 } else { 0 })
            .collect();
        let mut out = vec![0u8; 4];
        gray_resize(&cb, 4, 4, 1, 2, &mut out);
        assert_eq!(out, vec![128; 4]);
        // Upscaling repeats pixels; a same-size resize is the identity.
        let mut up = vec![0u8; 16];
        gray_resize(&[10, 20, 30, 40], 2, 2, 1, 4, &mut up);
        assert_eq!(&up[..4], &[10, 10, 20, 20]);
        assert_eq!(&up[12..], &[30, 30, 40, 40]);
        let mut same = vec![0u8; 4];
        gray_resize(&[1, 2, 3, 4], 2, 2, 1, 2, &mut same);
        assert_eq!(same, vec![1, 2, 3, 4]);
        // 96 → 48 (CarRacing to the default size) covers every source pixel exactly once.
        let img: Vec<u8> = (0..96 * 96 * 3).map(|i| (i % 251) as u8).collect();
        let mut out = vec![0u8; 48 * 48];
        gray_resize(&img, 96, 96, 3, 48, &mut out);
        assert!(out.iter().any(|&v| v > 0));
    }

    #[test]
    fn bridge_errors_keep_the_traceback() {
        let e = br#"{"error": "ValueError: boom", "traceback": "Traceback (most recent call last):\n  ...\nValueError: boom\n"}"#;
        let s = bridge_error(e);
        assert!(s.starts_with("ValueError: boom\nTraceback"), "{s}");
        let none = br#"{"error": "unsupported", "traceback": "NoneType: None\n"}"#;
        assert_eq!(bridge_error(none), "unsupported");
    }
}
