"""Command-line flags the WebUI adds for HumanRefine (loaded before the WebUI parses its args)."""


def preload(parser):
    parser.add_argument(
        "--humanrefine-models-dir",
        type=str,
        default=None,
        help="HumanRefine: folder with the MediaPipe .tflite models (default: <models dir>/humanrefine)",
    )
