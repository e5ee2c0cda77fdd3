"""HumanRefine's always-on script: UI wiring only; the work is in lib_humanrefine."""

from __future__ import annotations

from modules import script_callbacks, scripts

from lib_humanrefine import webui
from lib_humanrefine.webui import ui


class HumanRefineScript(scripts.Script):
    sorting_priority = 20  # Forge: place in the UI near ADetailer-like tools

    def __init__(self):
        super().__init__()
        self._jobs = {}  # id(p) -> JobState

    def title(self):
        return webui.TITLE

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        components, self.infotext_fields = ui.build(is_img2img)
        self.paste_field_names = [key for _component, key in self.infotext_fields if isinstance(key, str)]
        return components

    def process(self, p, *args):
        state = webui.start_job(p, args)
        if state is not None:
            self._jobs[id(p)] = state

    def postprocess_image_after_composite(self, p, pp, *args):
        state = self._jobs.get(id(p))
        if state is not None:
            webui.diagnose_image(p, state, pp.image)

    def postprocess(self, p, processed, *args):
        state = self._jobs.pop(id(p), None)
        if state is not None:
            webui.finish_job(p, processed, state)


script_callbacks.on_ui_settings(webui.register_settings)
