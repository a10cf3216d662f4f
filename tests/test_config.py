"""Training settings from one source: every TrainConfig field is an option of ``srgan-mlx train`` with its help and
range, recipes come from JSON files (``--config``, ``--preset``) that the options override."""

import dataclasses
import json

import pytest
from click.testing import CliRunner

from srgan_mlx.cli import main
from srgan_mlx.commands.train import command as train_command, given_settings
from srgan_mlx.errors import UserError
from srgan_mlx.training.config import FIELDS, TrainConfig, check_ranges, option, presets, read_recipe


def test_every_field_is_an_option_with_its_help():
    options = {opt for param in train_command.params for opt in param.opts}
    for name, f in FIELDS.items():
        assert option(name) in options, name
        assert f.metadata["help"], name
    help_text = CliRunner().invoke(main, ["train", "--help"]).output
    assert "--adam-bias-correction / --no-adam-bias-correction" in help_text
    assert "--ema-decay FLOAT" in help_text and "--beta2 FLOAT" in help_text


@pytest.mark.parametrize("name", presets())
def test_shipped_presets_are_valid_recipes(name):
    recipe = read_recipe(name)
    config = TrainConfig.from_dict({**recipe, "data": ["images"]})
    check_ranges(config)
    assert set(recipe) <= set(FIELDS)


def test_shipped_presets():
    assert {"paper-srresnet", "paper-srgan", "srresnet-x4", "srgan-x4", "tiny"} <= set(presets())
    paper = TrainConfig.from_dict(read_recipe("paper-srgan"))
    defaults = TrainConfig()
    assert paper.stage == "srgan" and paper.init == "srresnet"
    for f in dataclasses.fields(TrainConfig):
        if f.name not in ("stage", "init"):
            assert getattr(paper, f.name) == getattr(defaults, f.name), f.name  # the paper's values are the defaults


@pytest.mark.parametrize("args, message", [
    (["--beta1", "1.0"], "--beta1 must be in [0, 1), got 1.0"),
    (["--lr", "-1"], "--lr must be >= 0, got -1.0"),
    (["--keep", "-1"], "--keep must be >= 0, got -1"),
    (["--crop", "0"], "--crop must be at least 1, got 0"),
])  # fmt: skip
def test_ranges_come_from_the_fields(tmp_path, args, message):
    result = CliRunner().invoke(main, ["train", "--preset", "tiny", "--data", str(tmp_path), "--out",
                                       str(tmp_path / "run"), *args])  # fmt: skip
    assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_config_file_then_options_override(tmp_path, monkeypatch):
    """``--config``: the file's settings, then the options given; the run records the result."""
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"description": "mine", "num_blocks": 3, "channels": 8, "crop": 24, "steps": 5,
                                  "lr": 0.5, "batch_size": 2}))  # fmt: skip
    seen = {}

    def fake_train(config, overwrite):
        seen["config"] = config
        return tmp_path

    monkeypatch.setattr("srgan_mlx.training.train.train", fake_train)
    result = CliRunner().invoke(main, ["train", "--config", str(recipe), "--data", "imgs", "--lr", "0.25"])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert (config.num_blocks, config.channels, config.steps, config.lr, config.data) == (3, 8, 5, 0.25, ["imgs"])


def test_a_runs_config_json_starts_the_same_run(tmp_path, monkeypatch):
    saved = TrainConfig(data=["x"], steps=7, anchor_weight=2.0, stage="srgan", vgg="v.safetensors").to_dict()
    (tmp_path / "config.json").write_text(json.dumps(saved))
    seen = {}
    monkeypatch.setattr("srgan_mlx.training.train.train", lambda config, overwrite: seen.setdefault("c", config) and tmp_path)
    result = CliRunner().invoke(main, ["train", "--config", str(tmp_path / "config.json")])
    assert result.exit_code == 0, result.output
    assert seen["c"].to_dict() == saved


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable JSON config"),
    ("[1, 2]", "a config is a JSON object of training settings"),
    ('{"lr": 1e-4, "learning_rate": 1}', "unknown settings learning_rate"),
    ('{"phase_weight": "x"}', 'phase_weight must be a number, got "x"'),
    ('{"steps": 1.5}', "steps must be an integer or null, got 1.5"),
    ('{"adam_bias_correction": 1}', "adam_bias_correction must be true or false, got 1"),
    ('{"scale": true}', "scale must be an integer, got true"),
    ('{"data": "photos"}', 'data must be a list of strings, got "photos"'),
    ('{"vgg": 3}', "vgg must be a string or null, got 3"),
])  # fmt: skip
def test_bad_config_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = CliRunner().invoke(main, ["train", "--config", str(path), "--data", "x"])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    with pytest.raises(UserError, match="nowhere.json: no such config file"):
        read_recipe("nowhere.json")


def test_a_config_file_may_give_whole_numbers_for_decimals(tmp_path):
    path = tmp_path / "round.json"
    path.write_text('{"anchor_weight": 100, "steps": null, "data": ["a"]}')
    values = read_recipe(str(path))
    assert values == {"anchor_weight": 100.0, "steps": None, "data": ["a"]} and type(values["anchor_weight"]) is float


def test_given_settings_types():
    given = given_settings({"scale": "2", "data": ("a", "b"), "lr": None, "adam_bias_correction": False})
    assert given == {"scale": 2, "data": ["a", "b"], "adam_bias_correction": False}
