"""HumanRefine: diagnose malformed people in generated images and fix only what is broken.

The core (everything outside ``webui/`` and ``hosts/``) imports no WebUI module and no torch.
"""

__version__ = "0.1.0"
