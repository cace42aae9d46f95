"""Cited answers over a corpus of policy articles: load → chunk → embed/store → retrieve → answer.

Importing the package makes the third-party libraries behave offline by default (they read these
variables at import time, so this is the one place that sets environment variables). Each is only
a default: export ``HF_HUB_OFFLINE=0`` to let sentence-transformers fetch a hub model.
"""

import os

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
}.items():
    os.environ.setdefault(_name, _value)
