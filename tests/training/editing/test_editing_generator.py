"""Generator-facing editing on the tiny random model: SeFa from affines, inversion, 3D-control edits."""
import numpy as np
import pytest
import torch

from tests.conftest import make_tiny_model
from training.editing.control3d import gradient_edit, landmark_loss, linear_edit, train_regressor
from training.editing.generator import affine_layers, sefa_directions
from training.editing.inversion import FeatureDistance, _vgg16_features, invert, lpips_vgg16, pixel_distance
from training.editing.nrsfm import ShapeModel

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def generator():
    g, _ = make_tiny_model()
    return g.requires_grad_(False)


def test_affine_layers_follow_w_plus_order(generator):
    """Every style affine gets the W+ index that feeds it: conv0/conv1 consecutive, toRGB shared with the next conv0."""
    layers = affine_layers(generator)
    assert len(layers) == len(generator.style_affine_weights())
    index = {name: i for name, i, _ in layers}
    assert index["synthesis.blocks.0.conv1"] == 0 and index["synthesis.blocks.0.torgb"] == 1
    assert index["synthesis.blocks.1.conv0"] == 1 and index["synthesis.blocks.1.conv1"] == 2
    assert max(index.values()) == generator.num_ws - 1


def test_sefa_on_generator_with_planted_affines():
    """Affines of W+ layers 0-3 planted as U diag(s) V^T: SeFa over those layers returns V's top rows (|cos| > 0.999)."""
    g, _ = make_tiny_model()
    rng = np.random.default_rng(0)
    w_dim = g.w_dim
    v = np.linalg.qr(rng.standard_normal((w_dim, w_dim)))[0].T
    s = np.concatenate([[9.0, 7.0, 5.0], np.linspace(2.0, 0.1, w_dim - 3)])
    modules = dict(g.named_modules())
    chosen = [name for name, idx, _ in affine_layers(g) if idx <= 3 and not name.endswith("torgb")]
    rows = sum(modules[n + ".conv"].affine.weight.shape[0] for n in chosen)
    a = np.linalg.qr(rng.standard_normal((rows, w_dim)))[0] @ np.diag(s) @ v
    start = 0
    with torch.no_grad():
        for name in chosen:
            fc = modules[name + ".conv"].affine
            n = fc.weight.shape[0]
            fc.weight.copy_(torch.as_tensor(a[start:start + n] / fc.weight_gain, dtype=torch.float32))
            start += n
        for name, idx, _ in affine_layers(g):  # the other layers must not leak in
            if idx > 3:
                modules[name + ".conv"].affine.weight.mul_(50.0)
    directions, values = sefa_directions(g, np.arange(4), k=3)
    for i in range(3):
        assert abs(directions[i] @ v[i]) > 0.999
    np.testing.assert_allclose(values, s[:3] ** 2, rtol=1e-4)


def _target(generator, seed=3):
    with torch.no_grad():
        w_true = generator.mapping(torch.randn(1, generator.z_dim, generator=torch.Generator().manual_seed(seed)))
        return generator.synthesis(w_true, noise_mode="const")[0].numpy()


@pytest.mark.slow
def test_inversion_into_w_and_w_plus(generator):
    """From w_avg, Eq 2.20 (perceptual + L2) cuts the pixel error >= 10x in W; W+ ends at or below W's error."""
    synthesis = lambda w: generator.synthesis(w, noise_mode="const")  # noqa: E731
    target = _target(generator)

    def pixel_error(wplus):
        with torch.no_grad():
            return float(((synthesis(torch.as_tensor(wplus)[None])[0].numpy() - target) ** 2).mean())

    start = pixel_error(np.broadcast_to(generator.w_avg.numpy(), (generator.num_ws, generator.w_dim)).copy())
    perceptual = FeatureDistance(lambda x: [x, torch.nn.functional.avg_pool2d(x, 2)])
    errors = {}
    for space in ("w", "w+"):
        result = invert(synthesis, target, generator.w_avg.numpy(), generator.num_ws, space=space,
                        distance=perceptual, steps=50, lr=0.05)
        assert result.wplus.shape == (generator.num_ws, generator.w_dim)
        assert result.losses[-1] < result.losses[0]
        errors[space] = pixel_error(result.wplus)
    assert errors["w"] < start / 10
    assert errors["w+"] <= errors["w"] * 1.05


def test_lpips_from_local_file(tmp_path):
    """LPIPS-VGG built from a locally made state dict: zero for equal images, positive otherwise; a wrong file is named."""
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in _vgg16_features().state_dict().items()}
    state.update({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate([64, 128, 256, 512, 512])})
    torch.save(state, tmp_path / "lpips.pt")
    dist = lpips_vgg16(tmp_path / "lpips.pt")
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    assert torch.all(dist(x, x) < 1e-8)
    assert torch.all(dist(x, x.flip(-1)) > 1e-4)
    np.testing.assert_allclose(pixel_distance()(x, x + 0.1).numpy(), 0.01, rtol=1e-4)  # the plain-pixel fallback
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt"):
        lpips_vgg16(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        lpips_vgg16(tmp_path / "missing.pt")


@pytest.fixture(scope="module")
def regressor_setup():
    """A shape model, codes w and landmarks R(q(w)) with q a smooth planted function of w; phi trained on 400."""
    rng = np.random.default_rng(0)
    points, k, w_dim = 20, 3, 32
    model = ShapeModel(b0=rng.standard_normal((3, points)), d=np.linalg.qr(rng.standard_normal((3, 3)))[0],
                       b=np.linalg.qr(rng.standard_normal((points, k)))[0].T)
    w = rng.standard_normal((500, w_dim)).astype(np.float32)
    base = np.array([1, 0, 1, 0, 0, 0] + [0] * k + [0, 0], float)
    spread = np.array([0.1, 0.02, 0.1, 0.3, 0.3, 0.2] + [0.5] * k + [1, 1])
    q = base + np.tanh(w @ (0.1 * rng.standard_normal((w_dim, 8 + k)))) * spread
    phi = train_regressor(w[:400], model.render(q[:400]), model, q[:400], steps=400, hidden=128)
    return model, w, q, phi


@pytest.mark.slow
def test_regressor_predicts_landmarks_of_held_out_codes(regressor_setup):
    """phi trained on Eq 12 predicts held-out landmarks with L_L under 2% of their variance."""
    model, w, q, phi = regressor_setup
    held = model.render(q[400:])
    assert landmark_loss(phi, model, w[400:], held) < 0.02 * held.var()


@pytest.mark.slow
def test_linear_and_gradient_edits_reach_the_target(regressor_setup):
    """Eq 14 brings phi(w) closer to a changed yaw; Eq 15 reaches it, and the image regulariser keeps G(w) nearer G(w0)."""
    model, w, q, phi = regressor_setup
    w0 = w[450]
    with torch.no_grad():
        q0 = phi(torch.as_tensor(w0)[None])[0].numpy()
    target = q0.copy()
    target[4] += 0.2
    predict = lambda code: phi(torch.as_tensor(code)[None])[0].detach().numpy()  # noqa: E731
    assert np.abs(predict(linear_edit(phi, w0, target)) - target).max() < 0.5 * 0.2
    free = gradient_edit(phi, w0, target, steps=150, lr=0.01)
    assert np.sum((predict(free) - target) ** 2) < 0.05 * 0.2 ** 2
    image = torch.nn.Linear(w0.shape[0], 16).requires_grad_(False)  # a stand-in generator
    held = gradient_edit(phi, w0, target, generator=image, distance=lambda a, b: ((a - b) ** 2).mean(1),
                         strength=10.0, steps=150, lr=0.01)
    with torch.no_grad():
        moved = lambda code: float(((image(torch.as_tensor(code)) - image(torch.as_tensor(w0))) ** 2).mean())  # noqa: E731
    assert moved(held) < moved(free)
