"""h-space sampling, inversion and directions on a tiny randomly initialised UNet2DModel."""
import json

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

from training.editing.hspace import (
    ModelFolderError,
    from_unet,
    h_shape,
    hooked,
    invert,
    load_model,
    noise_given_h,
    sample,
    step,
)
from training.editing.hspace_directions import (
    Direction,
    DirectionFileError,
    disentangle,
    edit,
    edit_grid,
    ink_score,
    jacobian_directions,
    pca_directions,
    save_png,
    split_by_score,
    supervised_direction,
)

torch.set_num_threads(1)

# 32x32 gray drawings; three downsamples put h at 64 x 4 x 4.
TINY = dict(
    sample_size=32, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(16, 16, 32, 64),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=8,
)
H_SHAPE = (64, 4, 4)


def _unet(seed=0, out_scale=1.0):
    torch.manual_seed(seed)
    unet = UNet2DModel(**TINY)
    with torch.no_grad():
        unet.conv_out.weight.mul_(out_scale)
        unet.conv_out.bias.mul_(out_scale)
    return unet


@pytest.fixture(scope="module")
def model():
    return from_unet(_unet(), DDPMScheduler(num_train_timesteps=1000).config)


def _x_T(n=2, seed=0):
    return torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_hook_records_h_at_every_step(model, eta):
    """h_t is recorded once per sampling step with the mid block's shape, and it changes
    from step to step (it is recorded, not a stale copy)."""
    traj = sample(model, _x_T(3), steps=6, eta=eta, generator=torch.Generator().manual_seed(0))
    assert h_shape(model) == H_SHAPE
    assert traj.timesteps == model.timesteps(6) and len(traj.timesteps) == 6
    assert traj.timesteps == sorted(traj.timesteps, reverse=True)
    assert traj.h.shape == (6, 3, *H_SHAPE)
    assert traj.xs.shape == (6, 3, 1, 32, 32)
    for i in range(5):
        assert not torch.equal(traj.h[i], traj.h[i + 1])
    assert (traj.noise is None) == (eta == 0.0)


def test_paper_step_equals_diffusers_ddim_step():
    """Eqs 2-5 (η = 0 and η = 1, the same z) give what DDIMScheduler.step gives without clipping."""
    sched = DDIMScheduler(num_train_timesteps=1000, clip_sample=False)
    sched.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    x, eps, z = (torch.randn(2, 1, 8, 8, generator=g) for _ in range(3))
    a = sched.alphas_cumprod
    for eta in (0.0, 1.0):
        for t, t_prev in ((900, 800), (100, 0), (0, -100)):
            ours = step(x, eps, eps, float(a[t]), float(a[t_prev]) if t_prev >= 0 else 1.0, eta, z)
            ref = sched.step(eps, t, x, eta=eta, variance_noise=z).prev_sample
            assert torch.allclose(ours, ref, atol=1e-5), (eta, t)


def test_clipping_follows_the_scheduler_and_bounds_the_predicted_image():
    """With the scheduler's clip_sample (diffusers' default) P_t is clipped to [-1, 1], so the
    last DDIM step (whose result is P_0) stays in range; `clip=False`, or a scheduler with
    clip_sample off, leaves Eqs 2-5 unclipped."""
    unet = _unet(seed=2, out_scale=20.0)  # a large ε throws P_t far out of range
    clipping = from_unet(unet, DDPMScheduler(num_train_timesteps=1000).config)
    plain = from_unet(unet, DDPMScheduler(num_train_timesteps=1000, clip_sample=False).config)
    assert clipping.clip_range == 1.0 and plain.clip_range is None
    x_T = _x_T(1)
    clipped = sample(clipping, x_T, steps=3, eta=0.0)
    assert clipped.clip_range == 1.0 and float(clipped.x0.abs().max()) <= 1.0
    unclipped = sample(clipping, x_T, steps=3, eta=0.0, clip=False)
    assert unclipped.clip_range is None and float(unclipped.x0.abs().max()) > 1.5
    assert torch.equal(sample(plain, x_T, steps=3, eta=0.0).x0, unclipped.x0)
    assert torch.equal(sample(plain, x_T, steps=3, eta=0.0, clip=True).x0, clipped.x0)
    d = Direction("random", torch.ones(1, *H_SHAPE) / 32, clipped.timesteps, scale=1.0)
    assert torch.equal(edit(clipping, clipped, d, 0.0).x0, clipped.x0)  # the edit re-samples with clipping


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_zero_delta_reproduces_the_sample_exactly(model, eta):
    """Δh = 0 (hook adding zeros, Asyrrp too) and a rerun from (x_T, z_{T:1}) give bit-identical
    images; other noise z gives a different image, so z really is what is being replayed."""
    traj = sample(model, _x_T(), steps=5, eta=eta, generator=torch.Generator().manual_seed(1))
    zero = torch.zeros(1, *H_SHAPE)
    again = sample(model, traj.x_T, steps=5, eta=eta, noise=traj.noise, delta_h=zero)
    assert torch.equal(again.x0, traj.x0)
    assert torch.equal(again.h, traj.h)
    asy = sample(model, traj.x_T, steps=5, eta=eta, noise=traj.noise, delta_h=zero.expand(5, *H_SHAPE), asyrrp=True)
    assert torch.equal(asy.x0, traj.x0)
    if eta > 0:
        other = sample(model, traj.x_T, steps=5, eta=eta, generator=torch.Generator().manual_seed(2))
        assert not torch.allclose(other.x0, traj.x0)


def test_asyrrp_puts_the_edit_in_P_only(model):
    """An Asyrrp step equals Eq 2 with the edited ε in P_t and the unedited ε in D_t, and
    differs from injecting into both."""
    x_T = _x_T(1)
    delta = 2.0 * torch.randn(1, *H_SHAPE, generator=torch.Generator().manual_seed(3))
    t, t_prev = model.timesteps(2)
    with hooked(model) as hook, torch.no_grad():
        hook.delta = delta[0]
        eps_edit = model.unet(x_T, t).sample
        hook.delta = None
        eps_plain = model.unet(x_T, t).sample
    expected = step(x_T, eps_edit, eps_plain, model.alpha(t), model.alpha(t_prev), 0.0, None, model.clip_range)
    asy = sample(model, x_T, steps=2, eta=0.0, delta_h=delta, asyrrp=True)
    both = sample(model, x_T, steps=2, eta=0.0, delta_h=delta)
    assert torch.allclose(asy.xs[1], expected, atol=1e-6)  # xs[1]: the result of the first step
    assert not torch.allclose(asy.xs[1], both.xs[1], atol=1e-4)


@pytest.mark.slow
def test_ddim_inversion_round_trip_error_falls_with_steps():
    """DDIM inversion then DDIM sampling returns the image; on a U-Net whose ε hardly depends
    on x (conv_out x 0.01) the error falls as the steps grow (a random U-Net is not
    invertible over the full chain, as the reading notes found)."""
    m = from_unet(_unet(seed=1, out_scale=0.01), DDPMScheduler(num_train_timesteps=1000).config)
    x0 = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    errors = []
    for steps in (10, 40, 160):
        inv = invert(m, x0, steps=steps)
        assert inv.h.shape == (steps, 1, *H_SHAPE)
        back = sample(m, inv.x_T, steps=steps, eta=0.0, clip=False)
        errors.append(float((back.x0 - x0).norm() / x0.norm()))
    print("relative round-trip error at 10/40/160 steps:", errors)
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_edit_strength_zero_changes_nothing_and_more_strength_changes_more(model, eta):
    """A direction at strength 0 gives the unedited image exactly; the change to x0 grows
    monotonically with |strength|."""
    traj = sample(model, _x_T(1), steps=5, eta=eta, generator=torch.Generator().manual_seed(4))
    v = torch.randn(1, *H_SHAPE, generator=torch.Generator().manual_seed(5))
    d = Direction("random", v / v.norm(), traj.timesteps, scale=float(traj.h[0].norm()))
    assert torch.equal(edit(model, traj, d, 0.0).x0, traj.x0)
    changes = [float((edit(model, traj, d, s).x0 - traj.x0).norm()) for s in (0.05, 0.1, 0.2, 0.4)]
    assert all(a < b for a, b in zip(changes, changes[1:])), changes
    assert changes[0] > 0


def test_pca_recovers_planted_axes():
    """h_t = planted orthonormal axes with std 5, 3, 2 (different per step) + small noise:
    PCA finds each axis (|cos| > 0.99), its std within 10%, with signs aligned across steps."""
    g = torch.Generator().manual_seed(0)
    S, n, d = 4, 400, 64 * 2 * 2
    stds = torch.tensor([5.0, 3.0, 2.0])
    h = torch.empty(S, n, 64, 2, 2)
    axes = []
    for s in range(S):
        Q, _ = torch.linalg.qr(torch.randn(d, 3, generator=g))
        axes.append(Q)
        coeff = torch.randn(n, 3, generator=g) * stds
        h[s] = (coeff @ Q.T + 0.1 * torch.randn(n, d, generator=g) + 1.0).reshape(n, 64, 2, 2)
    dirs = pca_directions(h, [750, 500, 250, 0], 3, model="planted")
    for j, direction in enumerate(dirs):
        assert direction.vectors.shape == (S, 64, 2, 2)
        for s in range(S):
            v = direction.vectors[s].reshape(-1)
            assert abs(float(v @ axes[s][:, j])) / float(v.norm()) > 0.99
            assert abs(float(v.norm()) / float(stds[j]) - 1) < 0.1
    # consecutive steps point the same way where the planted axes overlap: force overlap and check
    h2 = torch.cat([h[:1], h[:1]])
    d2 = pca_directions(h2, [1, 0], 1)[0]
    assert float((d2.vectors[0] * d2.vectors[1]).sum()) > 0


def test_supervised_direction_finds_the_attribute_in_h_and_x_T():
    """Eq 10 with a classifier's scores: latents = base + score x attribute axis + noise; the
    mean difference of the top and bottom 20 points along the attribute (cos > 0.95)."""
    g = torch.Generator().manual_seed(0)
    N, S = 100, 3
    axis = torch.randn(S, *H_SHAPE, generator=g)
    axis /= axis.norm()
    scores = torch.rand(N, generator=g)
    h = (scores[None, :, None, None, None] * 10 * axis[:, None]) + 0.1 * torch.randn(S, N, *H_SHAPE, generator=g)
    pos, neg = split_by_score(scores, 20)
    assert scores[pos].min() > scores[neg].max()
    d = supervised_direction("attr", h, None, pos, neg, [2, 1, 0])
    cos = float((d.vectors * axis).sum() / d.vectors.norm())
    assert cos > 0.95
    x_axis = torch.randn(1, 32, 32, generator=g)
    x_T = scores[:, None, None, None] * x_axis + 0.1 * torch.randn(N, 1, 32, 32, generator=g)
    dx = supervised_direction("attr", None, x_T, pos, neg, [2, 1, 0], space="x_T")
    assert dx.vectors.shape == (1, 1, 32, 32)
    assert float((dx.vectors[0] * x_axis).sum() / (dx.vectors.norm() * x_axis.norm())) > 0.95


def test_disentangle_removes_the_other_directions():
    """Eq 11: the result is orthogonal to every removed direction and keeps the rest of v0."""
    g = torch.Generator().manual_seed(0)
    a, b, rest = (torch.randn(50, generator=g) for _ in range(3))
    v0 = rest + 2 * a - b
    v = disentangle(v0, [a, b])
    assert abs(float(v @ a)) < 1e-4 and abs(float(v @ b)) < 1e-4
    Q, _ = torch.linalg.qr(torch.stack([a, b], 1))
    assert torch.allclose(v, rest - Q @ (Q.T @ rest), atol=1e-4)


def test_jacobian_directions_on_the_unet(model):
    """Alg. 1 on ∂ε/∂h_τ of the U-Net (math attention, forward-mode AD): k orthonormal
    directions with J v = σ u, σ descending, and σ1 at least the gain of any random direction."""
    traj = sample(model, _x_T(1), steps=4, eta=1.0, generator=torch.Generator().manual_seed(0))
    info = {}
    dirs = jacobian_directions(model, traj, step_index=1, k=2, iters=12, generator=torch.Generator().manual_seed(0), info=info)
    V = torch.stack([d.vectors.reshape(-1) for d in dirs], 1)
    assert torch.allclose(V.T @ V, torch.eye(2), atol=1e-4)
    sig = [d.meta["singular_value"] for d in dirs]
    assert sig[0] >= sig[1] > 0
    assert dirs[0].meta["found_at"] == traj.timesteps[1]
    with noise_given_h(model, traj.xs[1], traj.timesteps[1]) as f:
        h = traj.h[1]
        jv = torch.func.jvp(f, (h,), (dirs[0].vectors,))[1]
        assert abs(float(jv.norm()) - sig[0]) / sig[0] < 1e-3
        for seed in range(3):
            r = torch.randn(h.shape, generator=torch.Generator().manual_seed(seed))
            assert float(torch.func.jvp(f, (h,), (r / r.norm(),))[1].norm()) <= sig[0] * (1 + 1e-3)
    # masked to the top-left quarter: the directions now move that quarter most
    mask = torch.zeros(32, 32)
    mask[:16, :16] = 1
    md = jacobian_directions(model, traj, step_index=1, k=1, mask=mask, iters=12, generator=torch.Generator().manual_seed(0))[0]
    with noise_given_h(model, traj.xs[1], traj.timesteps[1]) as f:
        jv_m = torch.func.jvp(f, (traj.h[1],), (md.vectors,))[1][0, 0]
        jv_u = torch.func.jvp(f, (traj.h[1],), (dirs[0].vectors,))[1][0, 0]
    inside = lambda j: float(j[:16, :16].norm() / j.norm())  # noqa: E731
    assert inside(jv_m) > inside(jv_u)
    assert md.method == "jacobian-masked"


def test_direction_file_round_trip_and_errors(tmp_path, model):
    """A saved direction loads back with its vectors, timesteps, model, scale and method; a
    direction used with other timesteps, and a non-direction file, raise named errors."""
    d = Direction("pca1", torch.randn(3, *H_SHAPE), [600, 300, 0], scale=2.5, model="/models/x", method="pca",
                  meta={"std": [1.0, 2.0, 3.0]})
    path = d.save(tmp_path / "pca1.safetensors")
    back = Direction.load(path)
    assert torch.equal(back.vectors, d.vectors)
    assert (back.timesteps, back.scale, back.model, back.method, back.meta) == ([600, 300, 0], 2.5, "/models/x", "pca", d.meta)
    with pytest.raises(DirectionFileError, match="--steps 3"):
        back.delta([800, 600, 400, 200, 0], 1.0)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(DirectionFileError, match="other.safetensors"):
        Direction.load(tmp_path / "other.safetensors")
    with pytest.raises(DirectionFileError, match="missing.safetensors"):
        Direction.load(tmp_path / "missing.safetensors")


def test_edit_grid_png(tmp_path, model):
    """The grid has one row per direction and sample and one column per strength, and the
    middle (strength 0) column is the unedited sample; it is written as a PNG."""
    import cv2

    traj = sample(model, _x_T(2), steps=3, eta=1.0, generator=torch.Generator().manual_seed(0))
    dirs = [Direction(f"d{i}", torch.randn(1, *H_SHAPE, generator=torch.Generator().manual_seed(i)), traj.timesteps)
            for i in range(2)]
    grid = edit_grid(model, traj, dirs, [-1.0, 0.0, 1.0])
    assert grid.shape == (2 * 2 * 32, 3 * 32, 1) and grid.dtype == np.uint8
    unedited = np.clip((traj.x0[1, 0].numpy() + 1) * 127.5, 0, 255).round().astype(np.uint8)
    assert np.array_equal(grid[32:64, 32:64, 0], unedited)
    path = save_png(grid, tmp_path / "grid.png")
    assert cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).shape == grid.shape[:2]


def test_load_model_from_local_folders(tmp_path):
    """A saved DDPMPipeline folder and a bare U-Net folder with scheduler_config.json load with
    the same weights and schedule; missing or wrong folders raise ModelFolderError naming them."""
    unet = _unet(seed=2)
    sched = DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2")
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(tmp_path / "pipe")
    unet.save_pretrained(tmp_path / "bare")
    sched.save_config(tmp_path / "bare")
    x = _x_T(1)
    for folder in ("pipe", "bare"):
        m = load_model(tmp_path / folder)
        assert m.num_train_timesteps == 100 and m.image_shape == (1, 32, 32)
        assert torch.allclose(m.alphas_cumprod, sched.alphas_cumprod)
        with torch.no_grad():
            assert torch.allclose(m.unet(x, 50).sample, unet(x, 50).sample, atol=1e-5)
    with pytest.raises(ModelFolderError, match="nowhere"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "bare" / "scheduler_config.json").unlink()
    with pytest.raises(ModelFolderError, match="scheduler_config.json"):
        load_model(tmp_path / "bare")
    cfg = json.loads((tmp_path / "pipe" / "scheduler" / "scheduler_config.json").read_text())
    cfg["prediction_type"] = "v_prediction"
    (tmp_path / "pipe" / "scheduler" / "scheduler_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match="prediction_type"):
        load_model(tmp_path / "pipe")


def test_ink_score_counts_strokes_not_paper_tone():
    """The ink score is the share of pixels darker than the image's own paper: the same strokes
    on white and on grey paper score alike, more strokes score higher, a black square scores 0."""
    strokes = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    strokes[..., 8:24, 10:12] = True  # 32 pixels of ink
    more = strokes.clone()
    more[..., 15:17, 4:28] = True

    def on(paper, mask):
        return torch.where(mask, torch.tensor(-1.0), torch.tensor(paper))
    scores = ink_score(torch.cat([on(1.0, strokes), on(-0.2, strokes), on(1.0, more), -torch.ones(1, 1, 32, 32)]))
    assert scores[0] == scores[1] == 32 / 1024
    assert scores[2] > scores[0]
    assert scores[3] == 0
