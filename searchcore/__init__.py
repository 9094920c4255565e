"""searchcore: image-by-image search with several CNNs (ONNX Runtime), Milvus and a Redis cache.

Data flows one way, folder by folder: files -> encoding -> storage -> retrieval -> evaluation /
inspection -> web. The Engine is imported on first use, so that the model export (which needs only
files/ and encoding/) runs without the rest.
"""
from .config import MODEL_NAMES, Settings

__all__ = ["Engine", "MODEL_NAMES", "Settings"]


def __getattr__(name: str):
    if name == "Engine":
        from .engine import Engine
        return Engine
    raise AttributeError(f"module 'searchcore' has no attribute {name!r}")
