"""Model families (lib_humanrefine/hosts/families.py) and ControlNet model picking
(hosts/controlnet.pick_model), with stand-ins of the loaded model as each host really leaves it
(tests/model_stand_ins.py) and safetensors headers laid out as the hosts' loaders read them."""

from __future__ import annotations

import json
import struct

import model_stand_ins as models
import pytest

from lib_humanrefine.hosts.controlnet import pick_model
from lib_humanrefine.hosts.families import (
    FAMILIES,
    NATIVE,
    ControlNetModel,
    bare_name,
    classify,
    family_from_header,
    loaded_family,
    safetensors_header,
)


@pytest.mark.parametrize(
    ("model", "family", "native", "controlnet"),
    [
        (models.a1111_model("sd1"), "sd15", 512, True),
        (models.a1111_model("sd2"), "sd2", 768, True),
        (models.a1111_model("sdxl"), "sdxl", 1024, True),
        (models.a1111_model("ssd"), "sdxl", 1024, True),
        (models.a1111_model("sdxl_inpaint"), "sdxl", 1024, True),
        (models.a1111_model("sd3"), "sd3", 1024, False),
        (models.forge_model("sd1"), "sd15", 512, True),
        (models.forge_model("sd2"), "sd2", 768, True),
        (models.forge_model("sdxl"), "sdxl", 1024, True),
        (models.forge_model("sdxl_refiner"), "sdxl", 1024, True),
        (models.forge_model("sd3"), "sd3", 1024, False),
        (models.forge_model("flux"), "flux", 1024, False),
        (models.forge_model("chroma"), "chroma", 1024, False),
        (models.neo_model("sd1"), "sd15", 512, True),
        (models.neo_model("sdxl"), "sdxl", 1024, True),
        (models.neo_model("flux"), "flux", 1024, False),
        (models.neo_model("chroma"), "chroma", 1024, False),  # is_flux is set: it names the latent format
        (models.neo_model("lumina2"), "lumina2", 1024, False),
        (models.neo_model("zimage"), "zimage", 1024, False),
        (models.neo_model("qwen"), "qwen-image", 1328, False),  # is_wan is set: the VAE, not the family
        (models.neo_model("wan"), "wan", 1024, False),
        (models.classic_model("sd1"), "sd15", 512, True),
        (models.classic_model("sdxl"), "sdxl", 1024, True),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, (str, int, bool)) else str(v),
)
def test_the_loaded_models_family_from_the_flags_and_classes_each_host_sets(model, family, native, controlnet):
    found = loaded_family(model)
    assert (found.key, found.native, found.controlnet) == (family, native, controlnet)
    assert NATIVE[found.key] == native  # the plan's crop size for that family


def test_an_engine_this_table_does_not_know_runs_without_controlnet_when_the_host_says_so():
    class HiDream(models.NeoForgeDiffusionEngine):  # a future Neo engine: not a "legacy" (UNet) model
        pass

    assert loaded_family(HiDream()) is FAMILIES["other"]
    assert not FAMILIES["other"].controlnet
    assert loaded_family(None).key == "sd15"  # before any model is loaded


@pytest.mark.parametrize(
    ("name", "family", "union"),
    [
        ("control_v11f1p_sd15_depth [cf3f2f5a]", "sd15", False),
        ("control_v11p_sd15_openpose", "sd15", False),
        ("control_sd15_inpaint_depth_hand_fp16 [09456e54]", "sd15", False),
        ("control_v11p_sd21_openposev2", "sd2", False),
        ("diffusers_xl_depth_mid [0b666080]", "sdxl", False),
        ("thibaud_xl_openpose_256lora", "sdxl", False),
        ("t2i-adapter_xl_openpose", "sdxl", False),
        ("kohya_controllllite_xl_depth", "sdxl", False),
        ("controlnet-union-sdxl-1.0-promax [7fbcaa6a]", "sdxl", True),
        ("diffusion_pytorch_model_promax", "sdxl", True),
        ("noobaiXLControlnet_epsDepthMidas", "sdxl", False),
        ("FLUX.1-dev-ControlNet-Union-Pro", "flux", True),
        ("sd3.5_large_controlnet_depth", "sd3", False),
        ("controlnet11Models_openpose", None, False),  # says nothing: its file's header decides
        ("diffusers_xl_depth_mid [0b666080] (for SDXL)", "sdxl", False),  # a settings label of ours
    ],
)
def test_a_controlnet_models_family_from_the_names_people_download(name, family, union):
    found = classify(name)
    assert (found.family, found.union) == (family, union)


def test_bare_name_drops_the_hash_and_our_family_label():
    union = "controlnet-union-sdxl-1.0-promax"
    assert bare_name(f"{union} [7fbcaa6a] (for SDXL, union)") == union
    assert bare_name("my model (v2)") == "my model (v2)"  # only our "(for ...)" label is ours to drop


def write_header(path, shapes: dict[str, tuple]):
    """A .safetensors file with these tensors (zeros), as safetensors lays it out."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 2
        for d in shape:
            size *= d
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * offset)
    return str(path)


ATTN2 = "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"
DIFFUSERS_ATTN2 = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"
HINT, COND = "input_hint_block.0.weight", "controlnet_cond_embedding.conv_in.weight"
ADM, DIFFUSERS_ADM = "label_emb.0.0.weight", "add_embedding.linear_1.weight"
LLLITE = "lllite_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.conditioning1.0.weight"
C3 = (16, 3, 3, 3)
HEADERS = {  # layout: (tensor shapes, family, union)
    "cldm SD 1.5": ({HINT: C3, ATTN2: (320, 768)}, "sd15", False),
    "cldm SD 2.1": ({"control_model." + HINT: C3, "control_model." + ATTN2: (320, 1024)}, "sd2", False),
    "cldm SDXL mid": ({HINT: C3, ADM: (1280, 2816)}, "sdxl", False),
    "diffusers SDXL": ({COND: C3, DIFFUSERS_ADM: (1280, 2816)}, "sdxl", False),
    "diffusers union ProMax": (
        {COND: C3, DIFFUSERS_ADM: (1280, 2816), "task_embedding": (8, 320),
         "control_add_embedding.linear_1.weight": (1280, 2048)}, "sdxl", True),
    "diffusers SD 1.5": ({COND: C3, DIFFUSERS_ATTN2: (640, 768)}, "sd15", False),
    "Control-LoRA SDXL": ({"lora_controlnet": (0,), HINT: C3, ADM: (1280, 2816)}, "sdxl", False),
    "ControlLLLite": ({LLLITE: (32, 3, 4, 4)}, "sdxl", False),
    "T2I-Adapter SDXL": ({"adapter.conv_in.weight": (320, 768, 3, 3), "adapter.body.0.block1.weight": (320, 320, 3, 3)},
                         "sdxl", False),
    "T2I-Adapter SD 1.5": ({"conv_in.weight": (320, 192, 3, 3), "body.0.block1.weight": (320, 320, 3, 3)},
                           "sd15", False),
    "Flux (XLabs)": ({"double_blocks.0.img_attn.qkv.weight": (9216, 3072), HINT: C3}, "flux", False),
    "SD 3.5": ({"pos_embed.proj.weight": (1536, 16, 2, 2), "controlnet_blocks.0.weight": (1536, 1536)}, "sd3", False),
    "IP-Adapter": ({"image_proj.proj.weight": (3072, 1024), "ip_adapter.1.to_k_ip.weight": (320, 768)}, None, False),
}  # fmt: skip


@pytest.mark.parametrize("layout", list(HEADERS))
def test_a_controlnet_files_family_from_its_safetensors_header(tmp_path, layout):
    shapes, family, union = HEADERS[layout]
    path = write_header(tmp_path / "model.safetensors", shapes)
    assert family_from_header(safetensors_header(path)) == family
    found = classify("my_control_model [abcd1234]", path)  # a name that says nothing
    assert (found.family, found.union) == (family, union)


def test_unreadable_or_foreign_files_say_nothing(tmp_path):
    (tmp_path / "broken.safetensors").write_bytes(b"\xff" * 20)
    (tmp_path / "model.pth").write_bytes(b"PK\x03\x04")
    assert classify("a [1]", str(tmp_path / "broken.safetensors")).family is None
    assert classify("a [1]", str(tmp_path / "model.pth")).family is None
    assert classify("a [1]", str(tmp_path / "missing.safetensors")).family is None


LISTED = [
    "control_v11f1p_sd15_depth [cf3f2f5a]",
    "control_sd15_inpaint_depth_hand_fp16 [09456e54]",
    "control_v11p_sd15_openpose [cab727d4]",
    "diffusers_xl_depth_mid [0b666080]",
    "controlnet-union-sdxl-1.0-promax [7fbcaa6a]",
    "ip-adapter_sdxl [da2b3cf0]",
]
SD15, SDXL, FLUX = FAMILIES["sd15"], FAMILIES["sdxl"], FAMILIES["flux"]


def test_sdxl_gets_sdxl_models_the_union_model_with_its_control_type_and_never_an_sd15_one():
    depth = pick_model(LISTED, "depth", SDXL)
    assert depth.model.name == "diffusers_xl_depth_mid [0b666080]" and depth.control_type is None
    pose = pick_model(LISTED, "openpose", SDXL)
    assert pose.model.name == "controlnet-union-sdxl-1.0-promax [7fbcaa6a]" and pose.control_type == "OpenPose"
    assert "union, control type OpenPose" in pose.note
    only_union = pick_model([n for n in LISTED if "depth_mid" not in n], "depth", SDXL)
    assert only_union.model.union and only_union.control_type == "Depth"
    sd15_only = pick_model(LISTED[:3], "depth", SDXL, folder="/webui/models/ControlNet")
    assert sd15_only.model is None
    assert "control_sd15_inpaint_depth_hand_fp16 [09456e54] (for SD 1.5) cannot run with it" in sd15_only.note
    assert sd15_only.missing == (
        "no SDXL depth ControlNet: download diffusers_xl_depth_mid.safetensors from huggingface.co/lllyasviel/"
        "sd_control_collection or diffusion_pytorch_model_promax.safetensors from huggingface.co/xinsir/"
        "controlnet-union-sdxl-1.0 into /webui/models/ControlNet"
    )


def test_sd15_prefers_the_hand_refiner_and_never_takes_an_sdxl_model():
    assert pick_model(LISTED, "depth", SD15).model.name == "control_sd15_inpaint_depth_hand_fp16 [09456e54]"
    assert pick_model(LISTED, "openpose", SD15).model.name == "control_v11p_sd15_openpose [cab727d4]"
    xl_only = pick_model(LISTED[3:], "openpose", SD15)
    assert xl_only.model is None and "control_v11p_sd15_openpose.pth from huggingface.co/lllyasviel/" in xl_only.missing


def test_a_model_chosen_in_the_settings_is_used_only_for_its_own_family():
    mismatch = pick_model(LISTED, "depth", SDXL, "control_v11f1p_sd15_depth")
    assert mismatch.model is None
    assert mismatch.missing.startswith(
        "depth: control_v11f1p_sd15_depth [cf3f2f5a] is for SD 1.5, the loaded checkpoint is SDXL; download "
    )
    labelled = pick_model(LISTED, "depth", SDXL, "controlnet-union-sdxl-1.0-promax [7fbcaa6a] (for SDXL, union)")
    assert labelled.model.union and labelled.control_type == "Depth"
    unknown = pick_model([*LISTED, "my_depth [12345678]"], "depth", SDXL, "my_depth")
    assert unknown.model.name == "my_depth [12345678]"  # neither name nor file tells: the user's word counts
    assert pick_model(LISTED, "depth", SDXL, "None").model is None
    missing = pick_model(LISTED, "depth", SDXL, "gone_depth")
    assert missing.model is None and missing.missing == "depth model 'gone_depth' not installed"


def test_models_whose_family_is_unknown_are_not_picked_automatically():
    unknown = [ControlNetModel("controlnet11Models_depth", None), ControlNetModel("depth_anything_v2", None)]
    assert pick_model(unknown, "depth", SD15).model is None
    assert pick_model(unknown, "depth", FLUX).missing == "no Flux depth ControlNet"  # nothing to suggest
