"""The HumanRefine tab in a bare gradio app with a TEST-DOUBLE host (no diffusion model): the
browser tests drive it, and a developer can look at it (gradio 3.41 or 4.x, whichever is installed):

    .venv/bin/python tests/tab_app.py --port 7870 --folder /tmp/hr-tab

It mounts the tab exactly as a WebUI does (its gr.Blocks rendered inside the app's tabs, elem_id
``tab_humanrefine``) next to a stand-in txt2img panel with the pieces of the WebUI's output panel the
tab hooks into (``txt2img_gallery``, ``generation_info_txt2img``, the button row with
``txt2img_send_to_extras``). The tab's JavaScript and CSS are the extension's own files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a test app
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from stand_in_host import ShiftHost  # noqa: E402

from lib_humanrefine.options import Settings  # noqa: E402
from lib_humanrefine.webui import tab  # noqa: E402

GENERATED_INFOTEXT = (
    "a woman in a navy uniform\nNegative prompt: blurry\n"
    "Steps: 12, Sampler: Euler a, CFG scale: 6, Seed: 40, Size: 512x600, Model: stand-in-model"
)


def fake_txt2img(gr, picture):
    """The parts of the WebUI's txt2img output panel the tab uses; "Generate" shows ``picture``."""
    major = tab.gradio_major()
    with gr.Blocks(analytics_enabled=False) as panel:
        gr.Textbox(label="Prompt", elem_id="txt2img_prompt")
        generate = gr.Button("Generate", elem_id="txt2img_generate")
        with gr.Column(elem_id="txt2img_results"):
            gallery = gr.Gallery(label="Output", elem_id="txt2img_gallery", columns=4, height=300,
                                 **({"type": "pil"} if major >= 4 else {}))  # fmt: skip
            tab.on_after_component(gallery, elem_id="txt2img_gallery")
            with gr.Row(elem_id="image_buttons_txt2img"):
                extras = gr.Button("Send to extras", elem_id="txt2img_send_to_extras", size="sm")
                tab.on_after_component(extras, elem_id="txt2img_send_to_extras")
            shown = gr.HTML(elem_id="html_info_txt2img")
            info = gr.Textbox(visible=False, elem_id="generation_info_txt2img")
            tab.on_after_component(info, elem_id="generation_info_txt2img")
        generate.click(
            lambda: ([picture], json.dumps({"infotexts": [GENERATED_INFOTEXT], "index_of_first_image": 0}),
                     GENERATED_INFOTEXT),
            None, [gallery, info, shown],
        )  # fmt: skip
    return panel


def make_app(folder: Path, picture, host_factory=ShiftHost, settings: Settings | None = None):
    import gradio as gr

    settings = settings or Settings(candidates=1, part_resolution=256, learned=False)
    tab.captured.clear()
    panel = fake_txt2img(gr, picture)
    backend = tab.Backend(
        make_host=lambda sampler, scheduler: host_factory(), settings=lambda: settings, model=lambda: "sd15",
        labels_dir=lambda: folder / "labels", save_image=tab.standalone_save(folder / "saved"),
        loaded_model=lambda: "stand-in-model", mask_editor="sketch" if tab.gradio_major() < 4 else "upload",
    )  # fmt: skip
    humanrefine = tab.build(backend)
    script = (REPO / "javascript" / "humanrefine-tab.js").read_text(encoding="utf-8")
    with gr.Blocks(analytics_enabled=False, css=(REPO / "style.css").read_text(encoding="utf-8"),
                   title="HumanRefine tab test") as demo:  # fmt: skip
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("txt2img", elem_id="tab_txt2img"):
                panel.render()
            with gr.Tab(tab.TITLE, elem_id=f"tab_{tab.TAB_ID}"):
                humanrefine.render()
        demo.load(None, None, None, **tab.js(f"() => {{ {script} }}"))
    demo.queue()
    return demo


def sample_picture():
    """Grace Hopper (matplotlib's sample photo) with a generated image's infotext in its PNG."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        picture = Image.open(fh).convert("RGB")
    picture.info["parameters"] = GENERATED_INFOTEXT
    return picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=7870)
    parser.add_argument("--folder", type=Path, default=Path("humanrefine-tab-test"))
    args = parser.parse_args()
    make_app(args.folder, sample_picture()).launch(server_name="127.0.0.1", server_port=args.port)


if __name__ == "__main__":
    main()
