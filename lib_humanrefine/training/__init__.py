"""Training and evaluating the learned check's heads: labelled folders (``data``), fitting and teaching
(``train``), held-out figures (``evaluate``) and ``bench``'s learned figures (``benchfig``).

For the command line only (``train`` and ``bench``): it needs scikit-learn and the labelled data, and
nothing on the WebUI's path imports it. What the diagnosis runs lives in ``diagnose.learned``."""
