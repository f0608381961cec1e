"""One source of defaults: the `dps` options, the schema, config.yaml and the science
functions agree with :mod:`dps_stages.settings`."""

from __future__ import annotations

import argparse
import inspect
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from dps_stages import settings
from dps_stages.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


def schema_node(key: str) -> dict[str, Any]:
    """The schema of a dotted settings key (``simulate.*`` is a dataset's ``simulate``)."""
    parts = key.split(".")
    if parts[0] == "simulate":
        node, parts = SCHEMA["$defs"]["simulate"], parts[1:]
    else:
        node = SCHEMA
    for part in parts:
        node = node["properties"][part]
        if "$ref" in node:
            node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def config_values(key: str) -> list[Any]:
    """The values config.yaml sets for a key (every simulated dataset for ``simulate.*``)."""
    parts = key.split(".")
    if parts[0] == "simulate":
        roots = [s.get("simulate", {}) for s in CONFIG["datasets"].values()]
        roots.append(CONFIG.get("networks", {}).get("simulate", {}))
        parts = parts[1:]
    else:
        roots = [CONFIG]
    out = []
    for node in roots:
        for part in parts:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if node != {}:
            out.append(node)
    return out


def plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys and values of the nested defaults."""
    out = {}
    for name, value in (asdict(obj) if prefix == "" else obj).items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            out |= leaves(value, key + ".")
        else:
            out[key] = value
    return out


DEFAULT_KEYS = leaves(settings.DEFAULTS)


def cli_options() -> list[tuple[str, str, argparse.Action]]:
    """(command, option, action) of every `dps` option tied to a config key."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [
        (name, action.option_strings[-1], action)
        for name, p in sub.choices.items()
        for action in p._actions
        if getattr(action, "config_key", None)
    ]


def test_options_are_tied_to_config_keys():
    options = cli_options()
    tied = {(cmd, opt) for cmd, opt, _ in options}
    # the settings every stage rule passes on are among them
    for expected in [
        ("simulate", "--salt-pepper"), ("simulate", "--levels"), ("background", "--radius"),
        ("sim-reconstruct", "--wiener-factor"), ("restore", "--local-wiener"),
        ("deconvolve", "--fidelity"), ("evaluate", "--n-r"), ("infer", "--tile"),
        ("identify-psf", "--wavelength"), ("figures", "--n-images"),
    ]:  # fmt: skip
        assert expected in tied
    assert {action.config_key for _, _, action in options} <= set(DEFAULT_KEYS)


@pytest.mark.parametrize(
    ("command", "option", "action"), cli_options(), ids=lambda v: getattr(v, "dest", v)
)
def test_cli_default_equals_schema_and_config(command, option, action):
    key = action.config_key
    default = action.default
    if isinstance(default, str) and action.type is not None:
        default = action.type(default)  # argparse converts string defaults the same way
    schema = schema_node(key)
    assert "default" in schema, f"{key}: no default in the schema"
    assert plain(default) == schema["default"], (command, option, key)
    for value in config_values(key):
        assert plain(default) == value, (command, option, key, "config.yaml")


@pytest.mark.parametrize("key", sorted(DEFAULT_KEYS))
def test_settings_equal_schema_defaults(key):
    assert plain(DEFAULT_KEYS[key]) == schema_node(key)["default"], key


def test_science_signatures_use_the_same_defaults():
    """The keyword defaults of the functions the stages call, where they have one."""
    from dps_stages import background, deconvolution, metrics, noise, sim

    d = settings.DEFAULTS

    def defaults(fn) -> dict[str, Any]:
        return {
            k: v.default
            for k, v in inspect.signature(fn).parameters.items()
            if v.default is not inspect.Parameter.empty
        }

    # otf_decay 'auto' is resolved by dps_stages.calibrate before sim.reconstruct, whose own
    # default is the ideal OTF; pupil 'ideal' is reconstruct's None (no aberration)
    assert asdict(d.sim)["otf_decay"] == "auto" and asdict(d.sim)["pupil"] == "ideal"
    wiener = asdict(d.sim) | {"otf_decay": 1.0, "pupil": None}
    assert {k: defaults(sim.reconstruct)[k] for k in asdict(d.sim)} == wiener
    assert {k: defaults(noise.acquisition_chain)[k] for k in asdict(d.simulate.noise)} == asdict(
        d.simulate.noise
    )
    assert defaults(background.subtract_background_tiled)["radius"] == d.background.radius
    assert defaults(deconvolution.richardson_lucy)["iterations"] == d.deconvolution.rl.iterations
    sparse = defaults(deconvolution.sparse_hessian)
    assert {k: sparse[k] for k in asdict(d.deconvolution.sparse)} == asdict(d.deconvolution.sparse)
    dec = defaults(metrics.decorrelation)
    assert (dec["n_r"], dec["n_g"]) == (d.evaluate.n_r, d.evaluate.n_g)


def test_a_disagreeing_default_is_caught(monkeypatch):
    """The check compares values: yesterday's `--salt-pepper 1e-4` against the schema's 0."""
    monkeypatch.setattr(
        settings, "DEFAULTS", settings.Defaults(simulate=settings.SimulateDefaults(
            noise=settings.NoiseDefaults(salt_pepper=1e-4)))
    )  # fmt: skip
    action = next(a for c, o, a in cli_options() if (c, o) == ("simulate", "--salt-pepper"))
    assert action.default == 1e-4
    with pytest.raises(AssertionError):
        test_cli_default_equals_schema_and_config("simulate", "--salt-pepper", action)


@pytest.mark.parametrize("value", ["0", "-3", "nan", "x"])
def test_deconvolve_iterations_must_be_positive(value, tmp_path, capsys):
    from dps_stages.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["deconvolve", "in.tif", str(tmp_path / "o.tif"), "--iterations", value])
    assert exc.value.code == 2
    assert "--iterations" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
