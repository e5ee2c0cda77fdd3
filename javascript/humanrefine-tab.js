// HumanRefine tab: the before/after comparison slider, and "Send to HumanRefine" from the
// txt2img / img2img galleries. Works inside the WebUIs (gradio 3 and 4) and in a bare gradio app:
// nothing here needs the WebUI's own scripts, and WebUI helpers are used only when present.
(function () {
    function root() {
        if (typeof gradioApp === "function") return gradioApp();
        const app = document.querySelector("gradio-app");
        return (app && app.shadowRoot) || document;
    }

    // --- comparison slider: the "before" image is shown left of the divider --------------------------
    function setPosition(slider, percent) {
        const pos = Math.max(0, Math.min(100, percent));
        slider.style.setProperty("--humanrefine-pos", pos + "%");
        slider.setAttribute("aria-valuenow", String(Math.round(pos)));
    }

    function sliderOf(event) {
        const path = event.composedPath ? event.composedPath() : [event.target];
        return path.find((el) => el.classList && el.classList.contains("humanrefine-compare")) || null;
    }

    function fromPointer(slider, event) {
        const box = slider.getBoundingClientRect();
        if (box.width > 0) setPosition(slider, ((event.clientX - box.left) / box.width) * 100);
    }

    let dragging = null;
    document.addEventListener("pointerdown", (event) => {
        const slider = sliderOf(event);
        if (!slider || event.button !== 0) return;
        dragging = slider;
        slider.focus();
        fromPointer(slider, event);
        event.preventDefault();
    });
    document.addEventListener("pointermove", (event) => {
        if (dragging) fromPointer(dragging, event);
    });
    document.addEventListener("pointerup", () => {
        dragging = null;
    });
    document.addEventListener("keydown", (event) => {
        const slider = sliderOf(event);
        if (!slider) return;
        const now = parseFloat(slider.getAttribute("aria-valuenow") || "50");
        const moves = {ArrowLeft: -5, ArrowDown: -5, ArrowRight: 5, ArrowUp: 5, PageDown: -25, PageUp: 25};
        if (event.key in moves) setPosition(slider, now + moves[event.key]);
        else if (event.key === "Home") setPosition(slider, 0);
        else if (event.key === "End") setPosition(slider, 100);
        else return;
        event.preventDefault();
    });

    // --- "Send to HumanRefine" -----------------------------------------------------------------------
    function selectedIndex(tab) {
        if (typeof selected_gallery_index === "function") {
            const index = selected_gallery_index();
            if (index >= 0) return index;
        }
        const thumbs = Array.from(root().querySelectorAll(`#${tab}_gallery .thumbnail-item`));
        return Math.max(0, thumbs.findIndex((el) => el.classList.contains("selected")));
    }

    function showTab() {
        const panel = root().querySelector("#tab_humanrefine");
        const tabs = root().querySelector("#tabs");
        if (!panel || !tabs) return;
        const panels = Array.from(tabs.querySelectorAll(".tabitem")).filter((el) => el.parentElement === tabs);
        const buttons = tabs.querySelectorAll("button");
        const index = panels.indexOf(panel);
        if (index >= 0 && buttons[index]) buttons[index].click();
    }

    // (gallery, generation info) -> ([the selected image], generation info, its index); opens the tab.
    window.humanrefineFromGallery = function (tab, gallery, info) {
        const items = gallery || [];
        const index = Math.min(selectedIndex(tab), Math.max(items.length - 1, 0));
        showTab();
        return [items.length ? [items[index]] : [], info, index];
    };
})();
