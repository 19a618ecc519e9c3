"""PyTorch backend over a bundle's `model.safetensors`: for parity checks and as a fallback.

Same interface as `inference.runtime.OrtBackend` (numpy float32 in and out). Needs torch,
so only `open_backend(..., kind="torch")` imports it.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from inference.backend import Backend
from inference.bundle import Bundle, BundleError
from inference.graphs import graph_modules
from inference.networks import Generator
from inference.published import build_encoder

log = logging.getLogger(__name__)


class TorchBackend(Backend):
    """The bundle's networks rebuilt from bundle.json["model"] and the safetensors weights."""

    def __init__(self, bundle: Bundle, device: str | None = None, threads: int | None = None):
        from safetensors.torch import load_file

        self.bundle = bundle
        if bundle.weights is None:
            raise BundleError(f"{bundle.path}: has no model.safetensors, so the torch backend cannot run it; "
                              f"use the onnxruntime backend or re-export without --no-weights")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cpu":
            torch.set_flush_denormal(True)  # denormals made CPU inference ~20x slower
            if threads is not None:
                torch.set_num_threads(int(threads))
        self.threads = torch.get_num_threads() if self.device.type == "cpu" else None
        try:
            tensors = load_file(str(bundle.weights))
        except Exception as exc:  # safetensors raises its own error type for a bad header
            raise BundleError(f"{bundle.weights}: not a readable safetensors file ({exc})") from exc
        try:
            generator = Generator(**bundle.model["generator"])
            encoder = build_encoder(bundle.model["encoder"])
            generator.load_state_dict(_part(tensors, "generator."))
            encoder.load_state_dict(_part(tensors, "encoder."))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise BundleError(f"{bundle.path}: bundle.json 'model' and {bundle.weights.name} do not build the "
                              f"networks ({str(exc)[:300]}); re-export the bundle") from exc
        self.generator, self.encoder = generator.to(self.device).eval(), encoder.to(self.device).eval()
        self.graphs = {name: module.to(self.device).eval() for name, module in graph_modules(generator, encoder).items()}
        self.name = f"torch/{self.device.type}"
        log.info("torch: using %s (threads %s)", self.device, self.threads)
        self._warm_up()

    def _warm_up(self) -> None:
        self.sketch_to_drawing(np.zeros([1, 1, self.bundle.resolution, self.bundle.resolution], np.float32))

    @torch.inference_mode()
    def _run(self, name: str, x: np.ndarray) -> np.ndarray:
        return self.graphs[name](torch.from_numpy(self._checked(name, x)).to(self.device)).cpu().numpy()


def _part(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
