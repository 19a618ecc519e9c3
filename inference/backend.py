"""What the table asks of a model, whatever runs it (ONNX Runtime or PyTorch): numpy
float32 in and out, one method per graph of the bundle. A backend implements `_run(graph,
x)`; the shapes are the bundle's (`inference.bundle.graph_io`)."""
from __future__ import annotations

import numpy as np

from inference.bundle import graph_io


class Backend:
    name = "?"
    bundle = None  # the inference.bundle.Bundle it runs

    def _checked(self, graph: str, x: np.ndarray) -> np.ndarray:
        """`x` as contiguous float32, refused unless it has the graph's input shape."""
        (_, shape), _ = graph_io(self.bundle, graph)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != len(shape) or list(x.shape[1:]) != shape[1:]:
            raise ValueError(f"{graph}: input has shape {list(x.shape)}, expected {shape} (bundle {self.bundle.path})")
        return x

    def _run(self, graph: str, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def sketch_to_drawing(self, sketch: np.ndarray) -> np.ndarray:
        """sketch [B,1,R,R] float32 in [-1, 1] -> drawing [B,C,R,R] in [-1, 1] (the fused graph
        where the bundle has one, else the encoder then the generator)."""
        if "fused" in self.bundle.graphs:
            return self._run("fused", sketch)
        return self.generate(self.encode(sketch))

    def encode(self, sketch: np.ndarray) -> np.ndarray:
        """sketch [B,1,R,R] -> absolute W+ [B,num_ws,w_dim]."""
        return self._run("encoder", sketch)

    def generate(self, wplus: np.ndarray) -> np.ndarray:
        """W+ [B,num_ws,w_dim] -> drawing [B,C,R,R] in [-1, 1]."""
        return self._run("generator", wplus)

    def map(self, z: np.ndarray) -> np.ndarray:
        """z [B,z_dim] -> w [B,w_dim] (untruncated)."""
        return self._run("mapping", z)
