"""The fast training ops in inference/networks.py against their plain references
(FAST_OPS off): the same networks' outputs and gradients, and exported graphs unchanged."""
import contextlib

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from inference import networks  # noqa: E402
from inference.networks import Discriminator, Generator, conv1x1_gray  # noqa: E402


@contextlib.contextmanager
def references():
    networks.FAST_OPS = False
    try:
        yield
    finally:
        networks.FAST_OPS = True


def demo_like_networks():
    """cpu-demo's shape at 32 px, channels-last as training keeps them, with noise on."""
    torch.manual_seed(3)
    G = Generator(32, 1, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512, channel_max=64)
    D = Discriminator(32, 1, channel_base=512, channel_max=64, mbstd_group=4)
    with torch.no_grad():
        for layer in G.modules():
            if isinstance(layer, networks.SynthesisLayer):
                layer.noise_strength.fill_(0.3)
    return (G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last))


def run_both(fn):
    fast = fn()
    with references():
        reference = fn()
    return fast, reference


def test_gray_1x1_conv_is_the_conv_bit_for_bit():
    """D's fromRGB as a linear layer gives the conv's products exactly, in channels-last memory."""
    torch.manual_seed(0)
    x = torch.randn(4, 1, 16, 16).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(8, 1, 1, 1), torch.randn(8)
    out = conv1x1_gray(x, weight, bias)
    assert torch.equal(out, F.conv2d(x, weight, bias))
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_generator_and_discriminator_are_the_same_function_fast_or_reference():
    """Outputs, D's input gradient (R1's) and G's weight gradients agree to float rounding."""
    G, D = demo_like_networks()
    z = torch.randn(8, 32)

    def forward_backward():
        G.zero_grad(set_to_none=True)
        torch.manual_seed(5)  # the same noise draws in both
        image = G(z, noise_mode="random")
        image_in = image.detach().requires_grad_(True)
        logits = D(image_in)
        grad_in, = torch.autograd.grad(logits.sum(), image_in)
        (image * grad_in).sum().backward()  # G's gradient through D's input gradient
        return image.detach(), logits.detach(), grad_in, [p.grad.clone() for p in G.parameters()
                                                          if p.grad is not None]

    fast, reference = run_both(forward_backward)
    for a, b in zip(fast[:3], reference[:3]):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), (a - b).abs().max()
    assert len(fast[3]) == len(reference[3]) > 10
    for a, b in zip(fast[3], reference[3]):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5 * b.abs().max()), (a - b).abs().max()
    # different enough to tell apart: the fast path really ran
    assert not torch.equal(fast[0], reference[0])


def test_export_traces_the_references():
    """Tracing (ONNX export) takes the reference ops whatever FAST_OPS says, so graphs do not change."""
    G, _ = demo_like_networks()
    G.eval()
    with torch.no_grad():
        ws = G.mapping(torch.randn(2, 32))

    class Synthesis(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.G = G

        def forward(self, w):
            return self.G.synthesis(w, noise_mode="const")

    def traced_ops():
        with torch.no_grad():
            graph = torch.jit.trace(Synthesis(), ws).inlined_graph
        return [node.kind() for node in graph.nodes()]

    fast, reference = run_both(traced_ops)
    assert fast == reference and "aten::upsample_bilinear2d" in fast
    # and eager really differs from the trace (the fast path is not silently off)
    with torch.no_grad():
        eager_fast, eager_ref = run_both(lambda: G.synthesis(ws, noise_mode="const"))
    assert not torch.equal(eager_fast, eager_ref)
    assert torch.allclose(eager_fast, eager_ref, rtol=1e-4, atol=1e-5)
