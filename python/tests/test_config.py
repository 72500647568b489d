"""load_config / parse_yaml: the YAML configs use, read without PyYAML; the rest is an error."""

import math
from pathlib import Path

import pytest

from td3sweep import ConfigError, get, load_config, parse_yaml

REPO = Path(__file__).resolve().parents[2]


def test_block_and_flow_collections_comments_and_scalars():
    text = """\
# a comment
seed: 0
networks:
  cnn:
    channels: [16, 32, 32]   # flow list
    actor_cnn_lr: 1.0e-5
    critic_cnn_lr: 1e-4
    learning_rate: null
  kwargs: {continuous: true, name: 'it''s', path: "a: #b"}
list:
- 1
- x: 2
  y: ~
- - 3
  - -.inf
nested:
  - a
  - b
empty_map: {}
empty_list: []
plain: hello world
quoted: "line\\n"
"""
    cfg = parse_yaml(text)
    assert cfg["seed"] == 0
    assert cfg["networks"]["cnn"] == {
        "channels": [16, 32, 32], "actor_cnn_lr": 1e-5, "critic_cnn_lr": 1e-4, "learning_rate": None
    }
    assert cfg["networks"]["kwargs"] == {"continuous": True, "name": "it's", "path": "a: #b"}
    assert cfg["list"] == [1, {"x": 2, "y": None}, [3, -math.inf]]
    assert cfg["nested"] == ["a", "b"]
    assert cfg["empty_map"] == {} and cfg["empty_list"] == []
    assert cfg["plain"] == "hello world" and cfg["quoted"] == "line\n"


def test_yaml_1_2_numbers_including_exponents_without_a_dot():
    cfg = parse_yaml("a: 1e-5\nb: -2\nc: .5\nd: .nan\ne: +.inf\nf: '1e-5'\ng: 0x10\nh: 1.0e+3\n")
    assert cfg["a"] == 1e-5 and cfg["b"] == -2 and cfg["c"] == 0.5
    assert math.isnan(cfg["d"]) and cfg["e"] == math.inf
    assert cfg["f"] == "1e-5" and cfg["g"] == 16 and cfg["h"] == 1000.0


@pytest.mark.parametrize(
    "text, line, what",
    [
        ("a: 1\nb: &x 2\n", 2, "anchors"),
        ("a: |\n  text\n", 1, "multi-line strings"),
        ("a: [1,\n  2]\n", 1, "not closed"),
        ("a: 1\na: 2\n", 2, "duplicate key"),
        ("a:\n\tb: 1\n", 2, "tab"),
        ("a: 1\n  b: 2\n", 2, "indentation"),
        ("a: 1\n---\nb: 2\n", 2, "second document"),
    ],
)
def test_unsupported_yaml_is_an_error_at_file_and_line(text, line, what):
    with pytest.raises(ConfigError) as e:
        parse_yaml(text, "cfg.yaml")
    assert str(e.value).startswith(f"cfg.yaml:{line}:")
    assert what in str(e.value)


def test_the_repos_own_configs_read():
    cfg = load_config(REPO / "configs" / "td3.yaml")
    assert get(cfg, "networks.cnn.actor_cnn_lr") == 1e-4
    assert get(cfg, "training.actor_cnn_grad_clip.max_norm", "off") == "off"  # null: the default
    assert get(cfg, "networks.cnn.missing", 3) == 3
    sweep = load_config(REPO / "sweeps" / "carracing.yaml")
    assert sweep["grid"]["networks.cnn.actor_cnn_lr"] == [1e-4, 1e-5]


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*/*.yaml")) +
                         sorted((REPO / "examples").glob("*/config/*.yaml")),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_the_examples_yaml_files_read(path):
    assert isinstance(load_config(path), dict)
