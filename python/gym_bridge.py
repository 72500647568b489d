"""Runs one Gymnasium environment for td3-sweep, over stdin/stdout pipes.

Started by `src/train/env/gym.rs` (which embeds this file) as
`python -c <this file> <request JSON>`; one process per env instance.

Framing: every message, both ways, is a little-endian u32 byte length followed by that many bytes,
the first of which is a tag.

Bridge -> td3-sweep, once at start:
  b"H" + JSON  handshake: {"obs": {"shape", "dtype", "encoding": "u8"|"f32", "image"},
               "action": {"shape", "low", "high"}, "max_episode_steps", "gymnasium"}
  b"E" + JSON  {"error": one line, "traceback": text}: the env could not be made or is unsupported.
td3-sweep -> bridge:
  b"R" + u8 has_seed + u64 seed                  reset(seed=seed if has_seed else None)
  b"S" + f32 * action_dim                        step(action), already in the env's bounds
Bridge -> td3-sweep, one reply per request:
  b"O" + obs bytes                               after a reset
  b"T" + f64 reward + u8 terminated + u8 truncated + obs bytes   after a step
  b"E" + JSON  {"error", "traceback"}            the env raised; the bridge exits after it

Observations travel raw: uint8 images as H*W*C bytes (row-major, channels last, as Gymnasium
returns them), everything else as float32 (little-endian, flattened, C order). The bridge exits
when its stdin closes (td3-sweep ended, however it ended).
"""

import json
import os
import signal
import struct
import sys
import threading
import time
import traceback

# The protocol owns the real stdout; anything the env, pygame or numpy print goes to stderr
# (file descriptor level, so C extensions' printf is redirected too).
_PROTO_OUT = os.fdopen(os.dup(1), "wb", buffering=0)
os.dup2(2, 1)
sys.stdout = sys.stderr
_PROTO_IN = os.fdopen(os.dup(0), "rb", buffering=0)
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def send(payload: bytes) -> None:
    _PROTO_OUT.write(struct.pack("<I", len(payload)) + payload)


def read_exact(n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = _PROTO_IN.read(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def recv() -> bytes:
    (n,) = struct.unpack("<I", read_exact(4))
    return read_exact(n)


def send_error(message: str) -> None:
    # Python 3.11+ underlines expressions with lines of ^ and ~: they double a traceback's length
    # and say nothing the code line doesn't, and the scheduler keeps only the last 20 stderr lines.
    lines = traceback.format_exc().splitlines()
    tb = "\n".join(line for line in lines if line.strip(" ^~") or not line.strip())
    send(b"E" + json.dumps({"error": message, "traceback": tb}).encode())


class Unsupported(Exception):
    """The env's spaces are outside what the bridge supports."""


def describe(env):
    """The handshake: spaces and how observations are encoded."""
    import gymnasium
    import numpy as np
    from gymnasium import spaces

    act = env.action_space
    if not isinstance(act, spaces.Box):
        raise Unsupported(
            f"action space {act} is not continuous: td3-sweep's TD3 needs a Box action space"
        )
    low = np.asarray(act.low, dtype=np.float64).reshape(-1)
    high = np.asarray(act.high, dtype=np.float64).reshape(-1)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise Unsupported(f"action space {act} is unbounded: [-1, 1] cannot be mapped onto it")
    obs = env.observation_space
    if not isinstance(obs, spaces.Box):
        raise Unsupported(f"observation space {obs} is not a Box (Dict/Tuple/Discrete are not supported)")
    shape = list(obs.shape)
    image = obs.dtype == np.uint8 and (
        len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4))
    )
    spec = env.spec
    return {
        "obs": {
            "shape": shape,
            "dtype": str(obs.dtype),
            "encoding": "u8" if image else "f32",
            "image": bool(image),
        },
        "action": {"shape": list(act.shape), "low": low.tolist(), "high": high.tolist()},
        "max_episode_steps": spec.max_episode_steps if spec is not None else None,
        "gymnasium": gymnasium.__version__,
    }


def exit_with_parent() -> None:
    """Ends this process soon after td3-sweep's training process is gone, however it went.

    Normally its end closes our stdin and the main loop exits. But an env stuck inside `step()`
    never reads stdin again, and a trainer killed for its timeout (SIGKILL) can't stop us: watch
    the parent instead, from a thread, and leave when we are re-parented.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                try:
                    print("[gym-bridge] td3-sweep is gone: exiting", file=sys.stderr, flush=True)
                except Exception:  # noqa: BLE001 - stderr may be a closed pipe by now
                    pass
                os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> int:
    # Ctrl-C reaches the whole process group; td3-sweep decides when to stop, and closes stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent()
    request = json.loads(sys.argv[1])
    try:
        import gymnasium
        import numpy as np

        kwargs = dict(request.get("kwargs") or {})
        if request.get("max_episode_steps") is not None:
            kwargs["max_episode_steps"] = int(request["max_episode_steps"])
        env = gymnasium.make(request["id"], **kwargs)
        info = describe(env)
    except ModuleNotFoundError as e:
        send_error(f"{e} (python: {sys.executable}; run `just setup` to install gymnasium[box2d])")
        return 2
    except Unsupported as e:
        send_error(str(e))
        return 2
    except Exception as e:  # noqa: BLE001 - any failure to build the env is reported, then fatal
        send_error(f"gymnasium.make({request.get('id')!r}) failed: {type(e).__name__}: {e}")
        return 2
    send(b"H" + json.dumps(info).encode())

    u8 = info["obs"]["encoding"] == "u8"
    act_dtype = env.action_space.dtype
    act_shape = env.action_space.shape

    def encode(obs) -> bytes:
        if u8:
            return np.ascontiguousarray(obs, dtype=np.uint8).tobytes()
        return np.ascontiguousarray(obs, dtype="<f4").reshape(-1).tobytes()

    while True:
        try:
            msg = recv()
        except EOFError:
            env.close()
            return 0
        try:
            tag = msg[:1]
            if tag == b"R":
                has_seed, seed = struct.unpack("<BQ", msg[1:10])
                obs, _ = env.reset(seed=int(seed) if has_seed else None)
                send(b"O" + encode(obs))
            elif tag == b"S":
                action = np.frombuffer(msg[1:], dtype="<f4").astype(act_dtype).reshape(act_shape)
                obs, reward, terminated, truncated, _ = env.step(action)
                head = struct.pack("<dBB", float(reward), bool(terminated), bool(truncated))
                send(b"T" + head + encode(obs))
            else:
                raise ValueError(f"unknown request tag {tag!r}")
        except Exception as e:  # noqa: BLE001 - reported to td3-sweep with the traceback
            send_error(f"{type(e).__name__}: {e}")
            return 1


if __name__ == "__main__":
    sys.exit(main())
