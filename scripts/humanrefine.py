"""HumanRefine's always-on script: UI wiring only; the work is in lib_humanrefine."""

from __future__ import annotations

from modules import script_callbacks, scripts

from lib_humanrefine import webui
from lib_humanrefine.webui import api, hooks, tab, ui


class HumanRefineScript(scripts.Script):
    sorting_priority = 1  # Forge sorts ascending: just after extensions without one, above ControlNet (10)

    def __init__(self):
        super().__init__()
        self._jobs = {}  # id(p) -> JobState

    def title(self):
        return webui.TITLE

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        components, self.infotext_fields, self.paste_field_names = ui.build(
            is_img2img, learned=lambda: webui.current_settings().learned
        )
        return components

    def process(self, p, *args):
        state = webui.start_job(p, args)
        if state is not None:
            self._jobs[id(p)] = state
            hooks.track(state)

    def postprocess_image_after_composite(self, p, pp, *args):
        state = self._jobs.get(id(p))
        if state is not None:
            webui.process_image(p, state, pp)

    def postprocess(self, p, processed, *args):
        state = self._jobs.pop(id(p), None)
        if state is not None:
            webui.finish_job(p, processed, state)
            hooks.untrack(state)


script_callbacks.on_ui_settings(webui.register_settings)
script_callbacks.on_before_ui(hooks.register_prompt_tag)
script_callbacks.on_image_saved(hooks.on_image_saved)
script_callbacks.on_app_started(api.on_app_started)
script_callbacks.on_ui_tabs(tab.on_ui_tabs)
script_callbacks.on_after_component(tab.on_after_component)  # "Send to HumanRefine" under the galleries
