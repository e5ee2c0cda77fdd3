"""The accordion's gradio components, built from options.SCRIPT_OPTIONS. Only constructor
arguments that gradio 3.41 and 4.40 share are used (no ``.style()``, no ``tool=``)."""

from __future__ import annotations

from ..options import SCRIPT_OPTIONS, Option


def _component(gr, option: Option, tab: str):
    common = {"label": option.label, "value": option.default, "elem_id": f"humanrefine_{tab}_{option.key}"}
    if option.help:
        common["info"] = option.help
    if option.kind == "bool":
        return gr.Checkbox(**common)
    if option.kind == "choice":
        return gr.Radio(choices=list(option.choices), **common)
    if option.kind == "float":
        return gr.Slider(minimum=option.minimum, maximum=option.maximum, step=option.step, **common)
    raise AssertionError(option.kind)


def build(is_img2img: bool):
    """Components in SCRIPT_OPTIONS order, and the ``infotext_fields`` pairs for pasting."""
    import gradio as gr

    tab = "img2img" if is_img2img else "txt2img"
    with gr.Accordion("HumanRefine", open=False, elem_id=f"humanrefine_{tab}_accordion", elem_classes=["humanrefine"]):
        components = [_component(gr, option, tab) for option in SCRIPT_OPTIONS]
    enabled = components[0]
    infotext_fields = [(enabled, lambda params: "HumanRefine" in params)]
    for option, component in zip(SCRIPT_OPTIONS, components):
        if option.infotext:
            infotext_fields.append((component, option.infotext))
    return components, infotext_fields
