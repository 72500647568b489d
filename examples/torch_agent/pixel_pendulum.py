"""Pendulum-v1 seen through small stacked grayscale frames: a pixel task that needs no CARLA.

Gymnasium's own Pendulum-v1 dynamics and rewards; only the observation changes. Each frame is
drawn from the pendulum's angle (a white rod on black, pivot at the centre, theta 0 upright), the
picture td3-sweep's built-in pixel Pendulum draws, so the two can be compared. An env step with this
drawing took 0.3-0.5 ms on the 2-core test machine; Gymnasium's 500 px `rgb_array` render plus a
resize to 48 px took 12 ms.
Frames are stacked (oldest first) because one frame shows no angular velocity.
"""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np

ROD_FRACTION = 0.42  # rod length as a fraction of the image side
ROD_HALF_WIDTH_FRACTION = 0.04  # rod half-thickness, at least one pixel


def render_rod(theta: float, side: int) -> np.ndarray:
    """A `side` x `side` uint8 frame: the rod as a thick segment (a capsule) from the centre."""
    c = side / 2.0
    length = ROD_FRACTION * side
    # Image rows grow downwards: the y-up tip (-sin, cos) becomes (-sin, -cos).
    d = np.array([-length * np.sin(theta), -length * np.cos(theta)])
    r = max(ROD_HALF_WIDTH_FRACTION * side, 1.0)
    centres = np.arange(side) + 0.5
    px = centres[None, :] - c
    py = centres[:, None] - c
    t = np.clip((px * d[0] + py * d[1]) / float(d @ d), 0.0, 1.0)
    dist2 = (px - t * d[0]) ** 2 + (py - t * d[1]) ** 2
    return np.where(dist2 <= r * r, 255, 0).astype(np.uint8)


class PixelPendulum(gym.Wrapper):
    """Pendulum-v1 with observations of shape (frame_stack, image_size, image_size), uint8."""

    def __init__(self, image_size: int = 48, frame_stack: int = 3, max_episode_steps: int | None = None):
        kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
        super().__init__(gym.make("Pendulum-v1", **kwargs))
        self.side = image_size
        self.frames: deque = deque(maxlen=frame_stack)
        self.observation_space = gym.spaces.Box(0, 255, (frame_stack, image_size, image_size), np.uint8)

    def _frame(self) -> np.ndarray:
        return render_rod(float(self.env.unwrapped.state[0]), self.side)

    def reset(self, **kwargs):
        _, info = self.env.reset(**kwargs)
        frame = self._frame()
        for _ in range(self.frames.maxlen):
            self.frames.append(frame)
        return np.stack(self.frames), info

    def step(self, action):
        _, reward, terminated, truncated, info = self.env.step(action)
        self.frames.append(self._frame())
        return np.stack(self.frames), float(reward), terminated, truncated, info
