"""Canonical names for an exported graph, so that two exports of the same weights are the same file.

tf2onnx names the nodes and tensors it makes from a process-wide counter (`Transpose__80`), so two
exports of one model could differ in a name alone, and so in their SHA-256: the model's identity, which
an index checks. Here every node is named by its operator and place (`Conv_12`), every tensor a node
makes by its place (`t37`) and every weight by the place of its first use (`w5`); the graph's inputs and
outputs keep their names (the manifest names them).
"""
from __future__ import annotations

import onnx


def canonical(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the model with canonical node, tensor and weight names, no unused weights and no
    value_info. A graph with subgraphs (If, Loop, Scan) is refused: their names are not renamed here."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        raise ValueError("a graph with subgraphs (If, Loop, Scan) cannot be renamed canonically here")
    kept = {v.name for v in graph.input} | {v.name for v in graph.output}
    renamed: dict[str, str] = {}
    weights = {init.name for init in graph.initializer}
    made = used = 0
    for n, node in enumerate(graph.node):
        for name in node.input:
            if name in weights and name not in renamed and name not in kept:
                renamed[name], used = f"w{used}", used + 1
        node.name = f"{node.op_type}_{n}"
        for name in node.output:
            if name and name not in kept:
                renamed[name], made = f"t{made}", made + 1
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    used = [init for init in graph.initializer if init.name in renamed or init.name in kept]
    del graph.initializer[:]
    graph.initializer.extend(used)
    for init in graph.initializer:
        init.name = renamed.get(init.name, init.name)
    graph.initializer.sort(key=lambda init: (len(init.name), init.name))
    for annotation in graph.quantization_annotation:
        annotation.tensor_name = renamed.get(annotation.tensor_name, annotation.tensor_name)
    del graph.value_info[:]
    return out


def rewrite(path) -> None:
    """The ONNX file at path, rewritten with canonical names and serialized deterministically."""
    data = canonical(onnx.load(str(path))).SerializeToString(deterministic=True)
    with open(path, "wb") as handle:
        handle.write(data)
