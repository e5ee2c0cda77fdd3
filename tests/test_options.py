import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib_humanrefine.options import SCRIPT_OPTIONS, BadOptions, ScriptArgs, infotext_params, parse_script_args

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@given(st.lists(json_values, max_size=5) | st.dictionaries(st.text(max_size=10), json_values, max_size=4))
def test_any_api_payload_parses_or_fails_clearly(payload):
    try:
        args = parse_script_args(payload)
    except BadOptions as exc:
        assert str(exc).startswith("HumanRefine") and "\n" not in str(exc)
    else:
        assert isinstance(args, ScriptArgs) and 0.05 <= args.threshold <= 0.95


def test_positional_and_dict_forms_agree():
    assert parse_script_args([True, "diagnose", 0.4]) == parse_script_args([{"enabled": True, "threshold": 0.4}])
    assert parse_script_args({"enabled": "true"}).enabled is True
    # the WebUI pads API args with the UI defaults after the dict
    assert parse_script_args([{"enabled": True, "threshold": 0.3}, "diagnose", 0.5]).threshold == 0.3
    assert parse_script_args([]) == ScriptArgs()  # missing trailing args keep defaults
    assert parse_script_args([True]).threshold == SCRIPT_OPTIONS[2].default


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ([True, "refine-all"], "mode"),
        ([True, "diagnose", 2.0], "between"),
        ([1, 2, 3, 4, 5], "at most"),
        ({"enabled": True, "sensitivity": "paranoid"}, "sensitivity"),
        ({"enabled": True, "treshold": 0.3}, "unknown option"),
        (["maybe"], "true or false"),
    ],
)
def test_wrong_payloads_name_the_problem(payload, fragment):
    with pytest.raises(BadOptions, match=fragment):
        parse_script_args(payload)


def test_infotext_lists_only_non_defaults():
    assert infotext_params(ScriptArgs(enabled=True)) == {}
    assert infotext_params(ScriptArgs(enabled=True, threshold=0.3)) == {"HumanRefine threshold": "0.3"}


def test_sensitivity_defaults_to_the_threshold_slider():
    assert parse_script_args([True, "diagnose", 0.4]).sensitivity == "threshold"
    args = parse_script_args({"enabled": True, "sensitivity": "Strict"})
    assert args.sensitivity == "strict" and infotext_params(args) == {"HumanRefine sensitivity": "strict"}
