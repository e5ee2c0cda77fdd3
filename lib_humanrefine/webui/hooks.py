"""WebUI callbacks that are not Script hooks: the ``humanrefine`` prompt tag as a known extra
network, and the report written beside each saved image (setting)."""

from __future__ import annotations

from ..errors import HumanRefineError
from . import JobState, log, write_report_beside

_active: list[JobState] = []  # jobs between Script.process and Script.postprocess


def track(state: JobState) -> None:
    _active.append(state)


def untrack(state: JobState) -> None:
    if state in _active:
        _active.remove(state)


def on_image_saved(params) -> None:
    """``on_image_saved``: write the report of a refined image beside it when the setting is on."""
    for state in _active:
        report = state.report_for(params.image)
        if report is not None and state.settings.save_report:
            try:
                write_report_beside(params, report)
            except (OSError, HumanRefineError) as exc:
                log(f"could not write the report beside {params.filename}: {exc}")
            return


def register_prompt_tag() -> None:
    """``on_before_ui``: make ``<humanrefine:...>`` a known extra network. The host strips it from
    the prompt before conditioning either way; registered, it is not reported as unknown."""
    from modules import extra_networks  # type: ignore[import-not-found]

    from ..prompt_tags import NAME

    class HumanRefineTag(extra_networks.ExtraNetwork):
        """Per-image switches are read from each image's own prompt (prompt_tags), not here."""

        def __init__(self):
            super().__init__(NAME)

        def activate(self, p, params_list):
            pass

        def deactivate(self, p):
            pass

    if NAME not in extra_networks.extra_network_registry:
        extra_networks.register_extra_network(HumanRefineTag())
