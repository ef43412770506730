"""`mmtrack-serve demo-model`: synthesize, train, publish and score the demo model
(``training/demo_model.py``; also runnable as ``python -m mmtrack_serve.training.demo_model``)."""
from ..demo_model import add_arguments, main  # noqa: F401
