"""The networks: shapes, ranges, truncation, noise modes, and the exportable modulated conv."""
import pytest

torch = pytest.importorskip("torch")

from inference.networks import (  # noqa: E402
    Discriminator, Generator, MinibatchStd, PSPEncoder, SketchToDrawing, count_parameters,
    modulated_conv2d, modulated_conv2d_fused, num_ws_for,
)
from tests.conftest import make_tiny_model  # noqa: E402


def small_generator(resolution=32, channels=1):
    torch.manual_seed(1)
    return Generator(resolution, channels=channels, z_dim=32, w_dim=32, mapping_layers=2,
                     channel_base=256, channel_max=16).eval()


def test_non_fused_modulated_conv_equals_the_fused_reference():
    """x*style -> conv -> *demod gives the same result as per-sample modulated+demodulated weights."""
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 6, 9, 9), torch.randn(5, 6, 3, 3), torch.randn(3, 6)
    for demodulate in (True, False):
        for up_fir, size in ((False, 9), (True, 18)):  # up_fir: StyleGAN2's 2x upsampling conv
            a = modulated_conv2d(x, weight, styles, demodulate=demodulate, padding=1, up_fir=up_fir)
            b = modulated_conv2d_fused(x, weight, styles, demodulate=demodulate, padding=1, up_fir=up_fir)
            assert a.shape == (3, 5, size, size)
            assert torch.allclose(a, b, atol=1e-5), (demodulate, up_fir, (a - b).abs().max())


@pytest.mark.parametrize("resolution,channels", [(32, 1), (64, 3)])
def test_generator_shapes_and_finite_output(resolution, channels):
    """G maps z [B, z_dim] to finite images [B, C, R, R]; mapping gives [B, num_ws, w_dim]."""
    G = small_generator(resolution, channels)
    assert G.num_ws == num_ws_for(resolution) == 2 * (resolution.bit_length() - 1) - 2
    z = torch.randn(2, 32)
    with torch.no_grad():
        ws = G.mapping(z)
        img = G(z, noise_mode="const")
    assert ws.shape == (2, G.num_ws, 32)
    assert img.shape == (2, channels, resolution, resolution)
    assert torch.isfinite(img).all() and img.std() > 0


def test_truncation_psi_zero_gives_the_average_image():
    """psi = 0 maps every z to w_avg, so two different z give the image of w_avg."""
    G = small_generator()
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        a = G(torch.randn(1, 32), truncation_psi=0.0, noise_mode="const")
        b = G(torch.randn(1, 32), truncation_psi=0.0, noise_mode="const")
        avg = G.synthesis(G.w_avg.expand(1, G.num_ws, -1), noise_mode="const")
        free = G(torch.randn(1, 32), noise_mode="const")
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, avg, atol=1e-6)
    assert not torch.allclose(free, avg, atol=1e-3)


def test_truncation_cutoff_truncates_only_the_first_styles():
    """With a cutoff of 2, styles 0-1 are w_avg + psi (w - w_avg) and the rest stay w."""
    G = small_generator()
    z = torch.randn(1, 32)
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        w = G.mapping(z)
        t = G.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(t[:, :2], G.w_avg + 0.5 * (w[:, :2] - G.w_avg), atol=1e-6)
    assert torch.equal(t[:, 2:], w[:, 2:])


def test_w_avg_tracks_the_mean_w_when_asked():
    """mapping(update_w_avg=True) moves the w_avg buffer toward the batch mean; the default does not."""
    G = small_generator()
    z = torch.randn(64, 32)
    G.mapping(z)
    assert torch.count_nonzero(G.w_avg) == 0
    w = G.mapping(z, update_w_avg=True)[:, 0]
    assert torch.allclose(G.w_avg, (1 - 0.995) * w.mean(0).detach(), atol=1e-6)


def test_noise_modes():
    """'const' is repeatable, 'random' varies once noise strength is on, unknown modes are refused."""
    G = small_generator()
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.5)
        ws = G.mapping(torch.randn(1, 32))
        c1, c2 = G.synthesis(ws, "const"), G.synthesis(ws, "const")
        r1, r2 = G.synthesis(ws, "random"), G.synthesis(ws, "random")
        n = G.synthesis(ws, "none")
    assert torch.equal(c1, c2)
    assert not torch.allclose(r1, r2)
    assert not torch.allclose(n, c1)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, "fixed")


def test_bad_arguments_are_refused_with_their_name():
    """A resolution that is not a power of two, 2 channels or a W+ of the wrong size raise ValueError."""
    with pytest.raises(ValueError, match="resolution 48"):
        Generator(48)
    with pytest.raises(ValueError, match="channels 2"):
        Generator(32, channels=2)
    G = small_generator()
    with pytest.raises(ValueError, match=r"expected \[B, 8, w_dim\]"):
        G.synthesis(torch.zeros(1, 7, 32))


def test_style_affine_weights_cover_every_modulated_layer():
    """One [in_channels, w_dim] weight per style layer (conv and toRGB), named by module path."""
    G = small_generator()
    weights = G.style_affine_weights()
    names = [n for n, _ in weights]
    convs = [n for n in names if not n.endswith("torgb")]
    assert len(convs) == G.num_ws - 1  # every w but the last feeds one conv
    assert "synthesis.blocks.0.conv1" in names and "synthesis.blocks.3.torgb" in names
    for name, w in weights:
        assert w.ndim == 2 and w.shape[1] == 32 and not w.requires_grad


def test_discriminator_scores_and_features():
    """D gives [B, 1] scores, works for a batch not divisible by the mbstd group, and exposes features."""
    torch.manual_seed(0)
    D = Discriminator(32, channels=3, channel_base=256, channel_max=16)
    img = torch.randn(3, 3, 32, 32)
    score = D(img)
    assert score.shape == (3, 1) and torch.isfinite(score).all()
    feats = D.features(img)
    assert [f.shape[-1] for f in feats] == [16, 8, 4]
    score.sum().backward()
    assert D.blocks[0].fromrgb.weight.grad is not None


def test_minibatch_std_adds_the_group_std_channel():
    """The extra channel is the mean std over each group; identical samples give zero."""
    layer = MinibatchStd(group_size=2)
    x = torch.ones(4, 3, 2, 2)
    assert torch.allclose(layer(x)[:, 3], torch.full((4, 2, 2), 1e-4), atol=1e-4)
    y = layer(torch.randn(4, 3, 2, 2))
    assert y.shape == (4, 4, 2, 2) and (y[:, 3] > 0.1).all()


def test_encoder_offsets_and_style_levels():
    """E gives [B, num_ws, w_dim] offsets split into coarse / medium / fine levels."""
    torch.manual_seed(0)
    E = PSPEncoder(64, num_ws=10, w_dim=32, width=8, head_width=16).eval()
    assert E.level_sizes == (3, 4, 3)
    with torch.no_grad():
        out = E(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 10, 32) and torch.isfinite(out).all()
    small = PSPEncoder(32, num_ws=3, w_dim=32, width=8, head_width=16)
    assert small.level_sizes == (3, 0, 0)


def test_light_heads_keep_a_full_width_encoder_small():
    """Full width (backbone 64..512, 18 styles at 1024) stays far below pSp's 160-190 M parameters."""
    E = PSPEncoder(1024, num_ws=18, w_dim=512, width=64, head_width=256)
    assert count_parameters(E) < 40_000_000


def test_sketch_to_drawing_adds_w_avg_and_refuses_a_foreign_encoder():
    """The model decodes E(sketch) + w_avg with constant noise; mismatched E/G are refused."""
    G, E = make_tiny_model()
    model = SketchToDrawing(E, G).eval()
    sketch = torch.ones(1, 1, 32, 32)
    with torch.no_grad():
        want = G.synthesis(E(sketch) + G.w_avg, noise_mode="const")
        assert torch.equal(model(sketch), want)
    with pytest.raises(ValueError, match="num_ws=G.num_ws"):
        SketchToDrawing(PSPEncoder(32, num_ws=5, w_dim=64, width=8, head_width=16), G)
