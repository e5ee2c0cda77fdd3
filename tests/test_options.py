import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib_humanrefine.options import (
    SCRIPT_OPTIONS,
    SETTINGS,
    BadOptions,
    ScriptArgs,
    Settings,
    infotext_params,
    parse_request_options,
    parse_script_args,
    short,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@given(st.lists(json_values, max_size=12) | st.dictionaries(st.text(max_size=10), json_values, max_size=4))
def test_any_api_payload_parses_or_fails_clearly(payload):
    try:
        args = parse_script_args(payload)
    except BadOptions as exc:
        assert str(exc).startswith("HumanRefine") and "\n" not in str(exc)
    else:
        assert (
            isinstance(args, ScriptArgs) and 0.05 <= args.threshold <= 1.0 and args.policy in ("all", "flagged", "off")
        )


def test_schema_matches_the_dataclasses():
    assert [o.key for o in SCRIPT_OPTIONS] == list(ScriptArgs.__dataclass_fields__)
    assert [short(o.key) for o in SETTINGS] == list(Settings.__dataclass_fields__)
    assert all(getattr(ScriptArgs(), o.key) == o.default for o in SCRIPT_OPTIONS)
    assert all(getattr(Settings(), short(o.key)) == o.default for o in SETTINGS)


def test_positional_and_dict_forms_agree():
    assert parse_script_args([True, "flagged", 0.4]) == parse_script_args([{"enabled": True, "policy": "flagged",
                                                                           "threshold": 0.4}])  # fmt: skip
    assert parse_script_args({"enabled": "true"}).enabled is True
    # the WebUI pads API args with the UI defaults after the dict
    assert parse_script_args([{"enabled": True, "threshold": 0.3}, "all", 0.5]).threshold == 0.3
    assert parse_script_args([]) == ScriptArgs()  # missing trailing args keep defaults
    assert parse_script_args([True]).policy == "all"
    assert parse_script_args([True, "diagnose", 0.5]).policy == "off"  # version 0.1's only mode still works


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ([True, "refine-everything"], "'policy' must be one of all, flagged, off"),
        ([True, "all", 2.0], "'threshold' must be between 0.05 and 1"),
        ([1] * 11, "at most 10"),
        ({"enabled": True, "treshold": 0.3}, "unknown option(s) 'treshold'"),
        (["maybe"], "'enabled' must be true or false"),
        ({"hand_strength": float("nan")}, "'hand_strength' must be between"),
        ({"enabled": True, "sensitivity": "paranoid"}, "'sensitivity' must be one of strict, balanced, relaxed"),
    ],
)
def test_wrong_payloads_name_the_problem(payload, fragment):
    with pytest.raises(BadOptions) as err:
        parse_script_args(payload)
    assert fragment in str(err.value)


def test_every_problem_is_reported_at_once_and_readable():
    with pytest.raises(BadOptions) as err:
        parse_script_args({"enabled": "maybe", "policy": "some", "colour": "red", "threshold": -1})
    message = str(err.value)
    for fragment in ("unknown option(s) 'colour'", "'enabled'", "'policy'", "'threshold'"):
        assert fragment in message
    assert "\n" not in message and message.count(";") >= 3


def test_infotext_lists_only_non_defaults_readably():
    assert infotext_params(ScriptArgs(enabled=True)) == {}
    assert infotext_params(
        ScriptArgs(enabled=True, threshold=0.3, sensitivity="threshold", faces=False), Settings(candidates=3)
    ) == {
        "HumanRefine threshold": "0.3",
        "HumanRefine sensitivity": "threshold",
        "HumanRefine faces": "False",
        "HumanRefine candidates": "3",
    }
    # under a preset the slider's value is not used, so the infotext does not claim it
    assert infotext_params(ScriptArgs(enabled=True, threshold=0.3)) == {}


def test_request_options_take_script_options_and_per_request_settings():
    args, settings = parse_request_options({"policy": "flagged", "candidates": 2, "verify": False},
                                           Settings(depth_weight=0.7))  # fmt: skip
    assert args.enabled and args.policy == "flagged"
    assert (settings.candidates, settings.verify, settings.depth_weight) == (2, False, 0.7)
    with pytest.raises(BadOptions) as err:
        parse_request_options({"candidates": 9, "save_before": True, "policy": 3})
    message = str(err.value)
    assert "'candidates' must be between 1 and 4" in message and "'save_before'" in message and "'policy'" in message
    with pytest.raises(BadOptions, match="must be an object"):
        parse_request_options(["all"])


def test_settings_from_the_webui_fall_back_to_defaults_on_bad_values():
    stored = {"humanrefine_candidates": 3, "humanrefine_verify": "nonsense"}
    settings = Settings.from_lookup(lambda key, default: stored.get(key, default))
    assert settings.candidates == 3 and settings.verify is True


def test_sensitivity_presets_default_to_balanced_and_reach_the_infotext():
    assert parse_script_args([True, "diagnose", 0.4]).sensitivity == "balanced"
    args = parse_script_args({"enabled": True, "sensitivity": "Strict"})
    assert args.sensitivity == "strict" and infotext_params(args) == {"HumanRefine sensitivity": "strict"}
