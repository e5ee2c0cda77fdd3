"""Contract tests of the WebUI glue with small stand-ins of the WebUI objects (signatures as in
A1111 1.10.1 / Forge: Script hooks, p.extra_generation_params with callables evaluated by
create_infotext(**locals), shared.opts / OptionInfo). The real WebUI check complements these."""

from __future__ import annotations

import importlib.util
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO
from PIL import Image


class FakeOpts(SimpleNamespace):
    def add_option(self, key, info):
        setattr(self, key, info.default)


@pytest.fixture
def webui_stubs(monkeypatch, models_ready, tmp_path):
    """Install stand-in `modules.*` and `gradio` packages and import scripts/humanrefine.py."""
    modules = types.ModuleType("modules")
    scripts = types.ModuleType("modules.scripts")
    scripts.AlwaysVisible = object()

    class Script:  # A1111: modules/scripts.py Script (the parts an always-on script uses)
        def __init__(self):
            self.infotext_fields = None
            self.paste_field_names = None

    scripts.Script = Script
    callbacks = types.ModuleType("modules.script_callbacks")
    callbacks.registered = []
    callbacks.on_ui_settings = lambda fn, *, name=None: callbacks.registered.append(fn)
    shared = types.ModuleType("modules.shared")
    shared.opts = FakeOpts()
    shared.OptionInfo = lambda default=None, label="", component=None, component_args=None, section=None, **kw: (
        SimpleNamespace(default=default, label=label, section=section)
    )
    shared.cmd_opts = SimpleNamespace(humanrefine_models_dir=str(models_ready))
    paths_internal = types.ModuleType("modules.paths_internal")
    paths_internal.models_path = str(tmp_path / "models")
    for name, mod in {"modules": modules, "modules.scripts": scripts, "modules.script_callbacks": callbacks,
                      "modules.shared": shared, "modules.paths_internal": paths_internal}.items():  # fmt: skip
        monkeypatch.setitem(sys.modules, name, mod)
        if "." in name:
            setattr(modules, name.split(".")[1], mod)
    spec = importlib.util.spec_from_file_location("humanrefine_script", REPO / "scripts" / "humanrefine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for fn in callbacks.registered:
        fn()
    return SimpleNamespace(module=module, shared=shared, callbacks=callbacks)


def make_p():
    return SimpleNamespace(extra_generation_params={}, iteration=0, batch_index=0, batch_size=1)


def create_infotext_value(p, index):
    """What A1111's create_infotext does with extra_generation_params: call callables with its locals."""
    value = p.extra_generation_params["HumanRefine"]
    return value(p=p, index=index, iteration=p.iteration) if callable(value) else value


def test_script_identity_and_settings(webui_stubs):
    script = webui_stubs.module.HumanRefineScript()
    assert script.title() == "HumanRefine"
    assert script.show(False) is sys.modules["modules.scripts"].AlwaysVisible
    assert webui_stubs.shared.opts.humanrefine_show_overlay is False


def test_diagnosis_goes_into_infotext_and_image_is_untouched(webui_stubs, astronaut):
    script = webui_stubs.module.HumanRefineScript()
    webui_stubs.shared.opts.humanrefine_show_overlay = True
    p = make_p()
    script.process(p, True, "diagnose", 0.5)
    image = Image.fromarray(astronaut)
    before = np.asarray(image).copy()
    pp = SimpleNamespace(image=image)
    script.postprocess_image_after_composite(p, pp, True, "diagnose", 0.5)
    assert pp.image is image and np.array_equal(np.asarray(pp.image), before)
    text = create_infotext_value(p, 0)
    assert text.split()[0] in ("ok", "suspect") and "," not in text
    processed = SimpleNamespace(images=[image], infotexts=["params"])
    script.postprocess(p, processed, True, "diagnose", 0.5)
    assert len(processed.images) == 2 and processed.images[1].size == image.size  # overlay appended
    assert len(processed.infotexts) == 2


def test_disabled_does_nothing(webui_stubs, astronaut):
    script = webui_stubs.module.HumanRefineScript()
    p = make_p()
    script.process(p, False, "diagnose", 0.5)
    assert "HumanRefine" not in p.extra_generation_params
    script.postprocess_image_after_composite(p, SimpleNamespace(image=Image.fromarray(astronaut)))


def test_wrong_api_args_give_a_message_not_a_crash(webui_stubs, astronaut):
    script = webui_stubs.module.HumanRefineScript()
    p = make_p()
    script.process(p, True, "explode", 0.5)
    assert "mode" in p.extra_generation_params["HumanRefine"]
    pp = SimpleNamespace(image=Image.fromarray(astronaut))
    script.postprocess_image_after_composite(p, pp)
    assert pp.image.size == (512, 512)


def test_missing_models_keep_the_image_and_explain(webui_stubs, tmp_path, astronaut):
    from lib_humanrefine import models

    webui_stubs.shared.cmd_opts.humanrefine_models_dir = str(tmp_path / "nothing")
    try:
        script = webui_stubs.module.HumanRefineScript()
        p = make_p()
        script.process(p, True)
        pp = SimpleNamespace(image=Image.fromarray(astronaut))
        script.postprocess_image_after_composite(p, pp)
        assert "models fetch" in create_infotext_value(p, 0)
        assert pp.image.size == (512, 512)
    finally:
        models.set_models_dir(None)


def test_ui_uses_only_arguments_gradio3_and_4_share(webui_stubs, monkeypatch):
    made = []
    shared_kwargs = {"label", "value", "elem_id", "info", "choices", "minimum", "maximum", "step"}

    def component(kind):
        def make(**kwargs):
            assert set(kwargs) <= shared_kwargs, kwargs
            made.append((kind, kwargs))
            return SimpleNamespace(kind=kind, **kwargs)

        return make

    class Accordion:
        def __init__(self, label, open=False, elem_id=None, elem_classes=None):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    gr = types.ModuleType("gradio")
    gr.Accordion, gr.Checkbox, gr.Radio, gr.Slider = Accordion, component("cb"), component("radio"), component("slider")
    monkeypatch.setitem(sys.modules, "gradio", gr)
    script = webui_stubs.module.HumanRefineScript()
    components = script.ui(is_img2img=True)
    assert [c.kind for c in components] == ["cb", "radio", "slider", "radio"]
    assert all(c.elem_id.startswith("humanrefine_img2img_") for c in components)
    assert {"HumanRefine threshold", "HumanRefine sensitivity"} <= set(script.paste_field_names)
    enabled_field = script.infotext_fields[0][1]
    assert enabled_field({"HumanRefine": "ok 0.10"}) is True and enabled_field({}) is False


def test_batches_keep_each_images_own_summary(webui_stubs, astronaut):
    """n_iter=2, batch_size=2: create_infotext gets the position in the batch as ``index`` while
    Forge's pp.index counts across batches; each image must still get its own line."""
    script = webui_stubs.module.HumanRefineScript()
    p = make_p()
    p.batch_size = 2
    script.process(p, True)
    blank = Image.new("RGB", (128, 128), (90, 90, 90))
    person = Image.fromarray(astronaut)
    expected = {}
    for iteration in range(2):
        p.iteration = iteration
        for batch_index, image in enumerate([person, blank] if iteration == 0 else [blank, person]):
            p.batch_index = batch_index
            pp = SimpleNamespace(image=image, index=batch_index + iteration * p.batch_size)
            script.postprocess_image_after_composite(p, pp)
            expected[(iteration, batch_index)] = "0 people" not in create_infotext_value(p, batch_index)
    assert expected == {(0, 0): True, (0, 1): False, (1, 0): False, (1, 1): True}


def test_missing_litert_runtime_is_reported_in_one_line(monkeypatch):
    import builtins

    from lib_humanrefine.detect import runtime
    from lib_humanrefine.errors import HumanRefineError

    real_import = builtins.__import__

    def no_litert(name, *args, **kwargs):
        if name.startswith("ai_edge_litert"):
            raise ImportError("No module named 'ai_edge_litert'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_litert)
    with pytest.raises(HumanRefineError) as err:
        runtime._interpreter_class()
    assert "pip install ai-edge-litert==2.3.0" in str(err.value) and "\n" not in str(err.value)
