"""The PyTorch module behind each of a bundle's graphs, defined once: the export traces
them, `--check` compares ONNX Runtime against them and the torch backend runs them, so the
three agree by construction. Input and output names are `inference.bundle.GRAPH_IO`."""
from __future__ import annotations

from torch import nn

from inference.networks import Generator, PSPEncoder, SketchToDrawing


class _Fused(nn.Module):
    def __init__(self, model: SketchToDrawing):
        super().__init__()
        self.model = model

    def forward(self, sketch):
        return self.model(sketch).clamp(-1.0, 1.0)


class _Encoder(nn.Module):
    def __init__(self, model: SketchToDrawing):
        super().__init__()
        self.model = model

    def forward(self, sketch):
        return self.model.encode(sketch)


class _Generator(nn.Module):
    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, wplus):
        return self.generator.synthesis(wplus, noise_mode="const").clamp(-1.0, 1.0)


class _Mapping(nn.Module):
    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, z):
        return self.generator.mapping(z)[:, 0]


def graph_modules(generator: Generator, encoder: PSPEncoder) -> dict[str, nn.Module]:
    model = SketchToDrawing(encoder, generator).eval()
    return {"fused": _Fused(model), "encoder": _Encoder(model),
            "generator": _Generator(generator), "mapping": _Mapping(generator)}
