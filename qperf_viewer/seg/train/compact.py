"""Store the ONNX model's float32 weights as float16 (half the file size), computed in float32.

Each large float32 initializer becomes a float16 initializer followed by a ``Cast`` to float32;
onnxruntime folds those casts into float32 constants when it loads the model, so inference
speed and arithmetic are unchanged and only the weights are rounded to float16 (relative error
below 5e-4). Needs the ``onnx`` package (training extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Initializers smaller than this many elements stay float32 (biases, batch-norm statistics).
MIN_ELEMENTS = 1024


def half_weights(src: str | Path, dst: str | Path, min_elements: int = MIN_ELEMENTS) -> int:
    """Write ``dst``: ``src`` with its float32 initializers of at least ``min_elements``
    elements stored as float16 behind a Cast node. Returns the number converted."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    casts = []
    n = 0
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < min_elements:
            continue
        name = init.name
        half = numpy_helper.from_array(arr.astype(np.float16), name=name + "__fp16")
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [name + "__fp16"], [name], to=TensorProto.FLOAT))
        n += 1
    # the casts must come before the nodes that use the weights
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return n
