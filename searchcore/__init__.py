"""searchcore: image-by-image search with several CNNs (ONNX Runtime), Milvus and a Redis cache.

Data flows one way: decode -> embed (model manifest + ONNX session) -> store -> search/compare -> evaluate.
"""
from .config import MODEL_NAMES, Settings
from .engine import Engine

__all__ = ["Engine", "MODEL_NAMES", "Settings"]
