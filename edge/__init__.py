"""The device: the phase-1 model on onnxruntime + tokenizers, and the two-phase client that defers to the server.

Nothing here imports torch, TorchServe, transformers, requests or the model package (tests/unit/test_layers.py
checks it): a device ships this package and the bundle `make edge` writes to dist/edge/ (model.onnx,
tokenizer.json, settings.json). Of the rest of the product it imports only handler.codec and the two torch-free
modules the codec itself is built on (handler.errors, handler.settings): the device refuses a review with the
server's own error.
"""
