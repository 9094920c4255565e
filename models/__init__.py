"""Export-time code: real ImageNet weights -> Keras 3 -> tf2onnx -> ONNX + manifest.

Only `python -m searchcore build-models` runs this, in a subprocess per model; the
runtime package `searchcore` never imports TensorFlow, Keras or tf2onnx.
"""
