"""A biosig model's ONNX graph run by torch: batched inference on a GPU onnxruntime cannot use.

The onnxruntime CUDA provider needs the onnxruntime-gpu build; torch with CUDA is often what a
GPU machine has instead. :class:`TorchGraph` executes the graph of a biosig model file node by
node with torch operations, on any torch device, for the offline batch path
(:mod:`biosig.analysis.batch`). It covers the plain operators the exporter writes
(:data:`SUPPORTED_OPS`, METHODS.md §7) and refuses any other with one clear error. Its outputs
equal onnxruntime's to float rounding (``tests/test_nets.py`` compares them for every
architecture).

The live path never imports this module (it runs onnxruntime, and imports no torch).
"""

from __future__ import annotations

import numpy as np

from biosig._checks import BiosigError

#: ONNX operators :class:`TorchGraph` executes.
SUPPORTED_OPS = frozenset({
    "Abs", "Add", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Div", "Exp",
    "Expand", "Gather", "Gemm", "Greater", "Identity", "Log", "MatMul", "Max", "Min", "Mul",
    "Neg", "ReduceLogSumExp", "ReduceMax", "ReduceProd", "ReduceSum", "Relu", "Reshape",
    "Shape", "Sign", "Slice", "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
    "Where",
})


class TorchGraph:
    """The graph of a biosig ONNX model (``features`` in, ``logits`` and ``ood_score`` out) as
    torch operations on one device.

    Parameters
    ----------
    model : onnx.ModelProto or bytes
        The model (a biosig model file's contents).
    device : str
        A torch device, e.g. ``"cuda"``, ``"cuda:1"`` or ``"cpu"``.

    Raises
    ------
    BiosigError
        If the graph uses an operator outside :data:`SUPPORTED_OPS`, or the device is not
        available.
    """

    def __init__(self, model, device: str = "cuda"):
        import onnx  # noqa: PLC0415
        import torch  # noqa: PLC0415
        from onnx import numpy_helper  # noqa: PLC0415

        if isinstance(model, (bytes, bytearray)):
            model = onnx.load_from_string(bytes(model))
        graph = model.graph
        unknown = sorted({node.op_type for node in graph.node} - SUPPORTED_OPS)
        if unknown:
            raise BiosigError(f"the torch engine cannot run operator(s) {unknown}; "
                              "use onnxruntime for this model")
        self.device = check_device(device)
        self._torch = torch
        self._nodes = list(graph.node)
        self._input = graph.input[0].name
        self._outputs = [output.name for output in graph.output]
        self._initial = {
            tensor.name: torch.as_tensor(numpy_helper.to_array(tensor).copy(),
                                         device=self.device)
            for tensor in graph.initializer
        }

    def __call__(self, features: np.ndarray) -> tuple[np.ndarray, ...]:
        """Run the graph on ``features`` (float32, (n, F)); the outputs as numpy arrays."""
        torch = self._torch
        values = dict(self._initial)
        values[self._input] = torch.as_tensor(np.ascontiguousarray(features), device=self.device)
        values[""] = None  # an optional input left out
        with torch.no_grad():
            for node in self._nodes:
                inputs = [values[name] for name in node.input]
                results = _run_node(torch, node, inputs, self.device)
                for name, value in zip(node.output, results):
                    values[name] = value
        return tuple(values[name].cpu().numpy() for name in self._outputs)

    def __repr__(self) -> str:
        return f"<TorchGraph | {len(self._nodes)} nodes | {self.device}>"


def check_device(device: str):
    """The ``torch.device`` named ``device``, once a tensor could be made there.

    Raises
    ------
    BiosigError
        If the name is not a torch device, or the device is not available.
    """
    import torch  # noqa: PLC0415

    try:
        parsed = torch.device(device)
        torch.zeros(1, device=parsed)
    except (RuntimeError, AssertionError, TypeError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BiosigError(f"torch device {device!r} is not available ({message})") from None
    return parsed


# -- the operators ---------------------------------------------------------------------------


def _attributes(node) -> dict:
    from onnx import helper  # noqa: PLC0415

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _dtype(torch, onnx_type: int):
    from onnx import TensorProto  # noqa: PLC0415

    table = {TensorProto.FLOAT: torch.float32, TensorProto.DOUBLE: torch.float64,
             TensorProto.INT64: torch.int64, TensorProto.INT32: torch.int32,
             TensorProto.BOOL: torch.bool}
    if onnx_type not in table:
        raise BiosigError(f"the torch engine cannot cast to ONNX type {onnx_type}")
    return table[onnx_type]


def _ints(tensor) -> list[int]:
    return [int(v) for v in tensor.reshape(-1).tolist()]


def _reduce_axes(inputs, attributes, rank: int) -> list[int] | None:
    """Axes of a Reduce*/Squeeze/Unsqueeze node: its second input (recent opsets) or its
    ``axes`` attribute; None for all."""
    if len(inputs) > 1 and inputs[1] is not None:
        axes = _ints(inputs[1])
    else:
        axes = list(attributes.get("axes", []))
    if not axes:
        return None
    return [a % rank for a in axes]


def _reduce(torch, op: str, x, inputs, attributes):
    axes = _reduce_axes(inputs, attributes, x.dim())
    keep = bool(attributes.get("keepdims", 1))
    if axes is None:
        if attributes.get("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.dim()))
    if op == "ReduceSum":
        return torch.sum(x, dim=axes, keepdim=keep)
    if op == "ReduceMax":
        return torch.amax(x, dim=axes, keepdim=keep)
    if op == "ReduceProd":  # torch.prod takes one axis: the last first, so the others stay put
        for axis in sorted(axes, reverse=True):
            x = torch.prod(x, dim=axis, keepdim=keep)
        return x
    return torch.logsumexp(x, dim=axes, keepdim=keep)


def _slice(x, inputs):
    starts, ends = _ints(inputs[1]), _ints(inputs[2])
    axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else range(len(starts))
    steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.dim()
    for axis, start, end, step in zip(axes, starts, ends, steps):
        if step < 0:
            raise BiosigError("the torch engine does not run Slice with negative steps")
        size = x.shape[axis]
        index[axis % x.dim()] = slice(max(min(start, size), -size), max(min(end, size), -size),
                                      step)
    return x[tuple(index)]


def _reshape(x, shape: list[int]):
    # ONNX: 0 copies the input's dimension (allowzero = 0), -1 is inferred.
    shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


def _gather(torch, x, indices, axis: int):
    axis %= x.dim()
    flat = indices.reshape(-1).long() % x.shape[axis]
    out = torch.index_select(x, axis, flat)
    return out.reshape(tuple(x.shape[:axis]) + tuple(indices.shape) + tuple(x.shape[axis + 1:]))


def _gemm(x, y, c, attributes):
    if attributes.get("transA", 0):
        x = x.transpose(0, 1)
    if attributes.get("transB", 0):
        y = y.transpose(0, 1)
    out = attributes.get("alpha", 1.0) * (x @ y)
    if c is not None:
        out = out + attributes.get("beta", 1.0) * c
    return out


_ELEMENTWISE = {
    "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
    "Div": lambda a, b: a / b,
}


#: Elementwise operators that are one torch function of one tensor.
_UNARY = {"Abs": "abs", "Neg": "neg", "Sign": "sign", "Sqrt": "sqrt", "Log": "log",
          "Exp": "exp", "Tanh": "tanh", "Relu": "relu"}


def _run_node(torch, node, inputs, device) -> list:
    op = node.op_type
    attributes = _attributes(node)
    if op in _ELEMENTWISE:
        return [_ELEMENTWISE[op](inputs[0], inputs[1])]
    if op in _UNARY:
        return [getattr(torch, _UNARY[op])(inputs[0])]
    if op == "Identity":
        return [inputs[0]]
    x = inputs[0] if inputs else None
    if op == "Constant":
        from onnx import numpy_helper  # noqa: PLC0415

        return [torch.as_tensor(numpy_helper.to_array(attributes["value"]).copy(),
                                device=device)]
    if op == "Cast":
        return [x.to(_dtype(torch, attributes["to"]))]
    if op == "Clip":
        low = inputs[1] if len(inputs) > 1 else None
        high = inputs[2] if len(inputs) > 2 else None
        if low is not None:
            x = torch.maximum(x, low.to(x.dtype))
        if high is not None:
            x = torch.minimum(x, high.to(x.dtype))
        return [x]
    if op in ("Min", "Max"):
        combine = torch.minimum if op == "Min" else torch.maximum
        out = inputs[0]
        for other in inputs[1:]:
            out = combine(out, other)
        return [out]
    if op == "Greater":
        return [inputs[0] > inputs[1]]
    if op == "Where":
        return [torch.where(inputs[0], inputs[1], inputs[2])]
    if op == "Concat":
        return [torch.cat(inputs, dim=attributes["axis"])]
    if op == "MatMul":
        return [inputs[0] @ inputs[1]]
    if op == "Gemm":
        return [_gemm(inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None, attributes)]
    if op == "Gather":
        return [_gather(torch, x, inputs[1], attributes.get("axis", 0))]
    if op == "Reshape":
        return [_reshape(x, _ints(inputs[1]))]
    if op in ("ReduceSum", "ReduceMax", "ReduceProd", "ReduceLogSumExp"):
        return [_reduce(torch, op, x, inputs, attributes)]
    if op == "Unsqueeze":
        axes = _ints(inputs[1]) if len(inputs) > 1 else list(attributes["axes"])
        rank = x.dim() + len(axes)
        for axis in sorted(a % rank for a in axes):
            x = x.unsqueeze(axis)
        return [x]
    if op == "Squeeze":
        axes = _reduce_axes(inputs, attributes, x.dim())
        if axes is None:
            return [x.squeeze()]
        for axis in sorted(axes, reverse=True):
            x = x.squeeze(axis)
        return [x]
    if op == "Slice":
        return [_slice(x, inputs)]
    if op == "Shape":
        return [torch.tensor(tuple(x.shape), dtype=torch.int64, device=device)]
    if op == "ConstantOfShape":
        from onnx import numpy_helper  # noqa: PLC0415

        fill = numpy_helper.to_array(attributes["value"]).reshape(-1) if "value" in attributes \
            else np.zeros(1, dtype=np.float32)
        return [torch.full(_ints(x), fill[0].item(),
                           dtype=torch.as_tensor(fill).dtype, device=device)]
    if op == "Expand":
        shape = torch.broadcast_shapes(tuple(x.shape), tuple(_ints(inputs[1])))
        return [x.expand(shape)]
    if op == "Transpose":
        perm = attributes.get("perm") or list(reversed(range(x.dim())))
        return [x.permute(*perm)]
    raise BiosigError(f"the torch engine cannot run operator {op}")  # pragma: no cover
