"""The accordion's gradio components, built from options.SCRIPT_OPTIONS, and the settings page's
components from options.SETTINGS. Only constructor arguments that gradio 3.41 and 4.40 share are
used (no ``.style()``, no ``tool=``)."""

from __future__ import annotations

from itertools import groupby

from ..options import AUTOMATIC, INFOTEXT_KEY, SCRIPT_OPTION, SCRIPT_OPTIONS, Option, pasted_value


def option_component(gr, option: Option, elem_id: str, **overrides):
    """The gradio component of one option: label, default, help, choices and range from the schema
    (``overrides``: other constructor arguments, e.g. the threshold slider's starting state)."""
    common = {"label": option.label, "value": option.default, "elem_id": elem_id}
    if option.help:
        common["info"] = option.help
    common.update(overrides)
    if option.kind == "bool":
        return gr.Checkbox(**common)
    if option.kind == "choice":
        return gr.Radio(choices=list(option.choices), **common)
    if option.kind in ("float", "int"):
        return gr.Slider(minimum=option.minimum, maximum=option.maximum, step=option.step, **common)
    raise AssertionError(option.kind)


def threshold_state(sensitivity: str, learned: bool) -> dict:
    """The threshold slider as the sensitivity leaves it: under a preset greyed out, showing the
    threshold the preset stands for (the learned heads' or, without the learned check, the landmark
    signals' own); under "threshold" free to move, from where it was."""
    if sensitivity == "threshold":
        return {"interactive": True}
    from ..diagnose.learned import sensitivity_threshold

    return {"value": round(sensitivity_threshold(sensitivity, learned), 3), "interactive": False}


def follow_sensitivity(gr, sensitivity, threshold, learned) -> None:
    """Keep ``threshold`` (a slider) showing what ``sensitivity`` (a radio) decides;
    ``learned()`` says whether the learned check is on. The slider is kept out of the host's
    ui-config.json (``do_not_save_to_config``): a value saved there would override the preset's
    threshold at every start (seen in A1111: 0.5 shown under "balanced", whose threshold is 0.76)."""
    threshold.do_not_save_to_config = True
    sensitivity.change(
        fn=lambda value: gr.update(**threshold_state(value, learned())), inputs=[sensitivity], outputs=[threshold]
    )


def paste_field(option: Option):
    """What "paste" / "send to" puts into the option's component: the infotext's value, the default
    when the infotext was made with HumanRefine but left the option at its default, and nothing
    (keep the current value) for infotexts without HumanRefine."""

    def read(params: dict):
        if option.infotext in params:
            return pasted_value(option, params[option.infotext])
        return option.default if INFOTEXT_KEY in params else None

    return read


def build(is_img2img: bool, learned=lambda: True):
    """Components in SCRIPT_OPTIONS order, and the ``infotext_fields`` pairs for pasting. The
    threshold slider follows the sensitivity (``learned()``: whether the learned check is on)."""
    import gradio as gr

    tab = "img2img" if is_img2img else "txt2img"
    starting = {"threshold": threshold_state(SCRIPT_OPTION["sensitivity"].default, learned())}

    def component(option: Option):
        return option_component(gr, option, f"humanrefine_{tab}_{option.key}", **starting.get(option.key, {}))

    components = []
    with gr.Accordion("HumanRefine", open=False, elem_id=f"humanrefine_{tab}_accordion", elem_classes=["humanrefine"]):
        for row, options in groupby(SCRIPT_OPTIONS, key=lambda o: o.row):
            if row:
                with gr.Row(elem_id=f"humanrefine_{tab}_{row}"):
                    components += [component(option) for option in options]
            else:
                components += [component(option) for option in options]
    by_key = dict(zip((o.key for o in SCRIPT_OPTIONS), components))
    follow_sensitivity(gr, by_key["sensitivity"], by_key["threshold"], learned)
    enabled = components[0]
    infotext_fields = [(enabled, lambda params: INFOTEXT_KEY in params)]
    for option, component in zip(SCRIPT_OPTIONS, components):
        if option.infotext:
            infotext_fields.append((component, paste_field(option)))
    paste_names = [INFOTEXT_KEY] + [o.infotext for o in SCRIPT_OPTIONS if o.infotext]
    return components, infotext_fields, paste_names


def controlnet_model_choices() -> list[str]:
    """Automatic, None, and the ControlNet models the host lists (none without ControlNet), each
    labelled with the family it is made for ("diffusers_xl_depth_mid [0b666080] (for SDXL)"), those
    for the loaded checkpoint's family first. A model for another family is never used; the label
    says so before anyone picks it."""
    models, family = [], None
    try:
        from ..hosts.controlnet import find_controlnet
        from ..hosts.webui import current_family

        bridge = find_controlnet(None)
        models = bridge.models() if bridge else []
        family = current_family(load=False).key  # (building the settings page must not load a checkpoint)
    except Exception:  # the settings page must open even if ControlNet is broken
        pass
    models = sorted(models, key=lambda m: (m.family != family, m.family or "~", m.name.lower()))
    return [AUTOMATIC, "None", *(m.label for m in models)]


def setting_component(option: Option):
    """(component, component_args) for ``shared.OptionInfo``; None lets the host pick a checkbox."""
    import gradio as gr

    if option.kind == "bool":
        return None, None
    if option.kind in ("float", "int"):
        return gr.Slider, {"minimum": option.minimum, "maximum": option.maximum, "step": option.step}
    if option.kind == "text":
        return gr.Dropdown, lambda: {"choices": controlnet_model_choices()}
    if option.kind == "path":
        return gr.Textbox, {}
    raise AssertionError(option.kind)
