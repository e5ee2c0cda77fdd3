// HumanRefine: show the accordion title in bold when the extension is enabled, so a user sees
// at a glance that diagnosis will run (the checkbox itself sits inside the closed accordion).
(function () {
    function update(tab) {
        const box = gradioApp().querySelector(`#humanrefine_${tab}_enabled input[type=checkbox]`);
        const acc = gradioApp().querySelector(`#humanrefine_${tab}_accordion`);
        if (!box || !acc) return false;
        const apply = () => acc.classList.toggle("humanrefine-active", box.checked);
        box.addEventListener("change", apply);
        apply();
        return true;
    }
    if (typeof onUiLoaded !== "function") return; // outside a WebUI (the tab's browser tests)
    onUiLoaded(function () {
        ["txt2img", "img2img"].forEach(update);
    });
})();
