"""`newsnow edit directions|grid` on the tiny test bundle, end to end through the CLI."""
import cv2
import numpy as np
import pytest

from installation.cli import main
from training.editing.directions import Directions


@pytest.mark.slow
def test_directions_and_grid_on_a_bundle(tiny_bundle, tmp_path):
    """Each method writes unit directions of the bundle's w_dim; the grid is rows x strengths tiles of the drawing."""
    out = {}
    for method in ("ganspace", "sefa"):
        out[method] = tmp_path / f"{method}.npz"
        assert main(["edit", "directions", "--method", method, "--bundle", str(tiny_bundle), "--out",
                     str(out[method]), "--k", "3", "--samples", "500", "--layers", "0:4"]) == 0
        d = Directions.load(out[method])
        assert d.method == method and d.directions.shape == (3, 64) and list(d.layers) == [0, 1, 2, 3]
        assert d.std is not None and np.all(d.std > 0)
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((200, 64))
    np.save(tmp_path / "w.npy", latents)
    np.save(tmp_path / "y.npy", latents[:, 5] > 0)
    np.save(tmp_path / "c.npy", latents[:, 5] + latents[:, 6] > 0)
    assert main(["edit", "directions", "--method", "interfacegan", "--bundle", str(tiny_bundle), "--out",
                 str(tmp_path / "ifg.npz"), "--latents", str(tmp_path / "w.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--condition-labels", str(tmp_path / "c.npy")]) == 0
    normal = Directions.load(tmp_path / "ifg.npz").directions[0]
    assert abs(normal[5]) > 0.5  # the labelled attribute's axis dominates what is left after conditioning

    grid_path = tmp_path / "grid.png"
    assert main(["edit", "grid", "--bundle", str(tiny_bundle), "--directions", str(out["sefa"]),
                 "--out", str(grid_path), "--strengths=-2,0,2", "--no-labels"]) == 0
    grid = cv2.imread(str(grid_path), cv2.IMREAD_UNCHANGED)
    assert grid.shape == (3 * 32, 3 * 32)
    tiles = grid.reshape(3, 32, 3, 32).transpose(0, 2, 1, 3)
    for row in range(3):  # strength 0 is the same drawing in every row; +-2 std changes it
        np.testing.assert_array_equal(tiles[row, 1], tiles[0, 1])
        assert np.abs(tiles[row, 0].astype(int) - tiles[row, 1]).max() > 0

    labelled_path = tmp_path / "labelled.png"
    assert main(["edit", "grid", "--generator", str(tiny_bundle), "--directions", str(out["sefa"]),
                 "--out", str(labelled_path), "--strengths=-2,0,2"]) == 0
    assert_labelled(cv2.imread(str(labelled_path), cv2.IMREAD_UNCHANGED), grid, rows=3, columns=3, tile=32)


def assert_labelled(labelled, tiles, rows, columns, tile):
    """The tiles sit unchanged at the bottom right; each row and column has text (dark pixels) beside it."""
    top, left = labelled.shape[0] - tiles.shape[0], labelled.shape[1] - tiles.shape[1]
    assert top > 5 and left > 5
    np.testing.assert_array_equal(labelled[top:, left:], tiles)
    ink = labelled.min(axis=-1) if labelled.ndim == 3 else labelled
    for i in range(rows):
        assert ink[top + i * tile:top + (i + 1) * tile, :left].min() < 128, f"row {i} has no label"
    for j in range(columns):
        assert ink[:top, left + j * tile:left + (j + 1) * tile].min() < 128, f"column {j} has no label"


def test_bad_inputs_are_reported_without_traceback(tiny_bundle, tmp_path, capsys):
    """A missing directions file or missing interfacegan labels give exit 2 and a message naming the file/flag."""
    assert main(["edit", "grid", "--bundle", str(tiny_bundle), "--directions", str(tmp_path / "none.npz"),
                 "--out", str(tmp_path / "g.png")]) == 2
    assert "none.npz" in capsys.readouterr().err
    assert main(["edit", "directions", "--method", "interfacegan", "--bundle", str(tiny_bundle),
                 "--out", str(tmp_path / "i.npz")]) == 2
    assert "--latents" in capsys.readouterr().err


@pytest.mark.slow
def test_grid_on_the_demo_bundle(tmp_path):
    """With the bundled demo model, GANSpace directions and their grid are written with no --bundle given."""
    from inference.bundle import DEMO_BUNDLE

    if not (DEMO_BUNDLE / "bundle.json").is_file():
        pytest.skip("the demo bundle is not in this checkout")
    npz, png = tmp_path / "d.npz", tmp_path / "grid.png"
    assert main(["edit", "directions", "--method", "ganspace", "--out", str(npz), "--k", "2", "--samples", "300"]) == 0
    assert main(["edit", "grid", "--directions", str(npz), "--out", str(png), "--strengths=-2,0,2", "--no-labels"]) == 0
    grid = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert grid is not None and grid.shape[0] * 3 == grid.shape[1] * 2


@pytest.mark.slow
def test_sefa_and_inversion_on_the_demo_bundle(tmp_path):
    """The demo bundle carries its torch weights: SeFa reads its style affines, and W+
    optimisation (inversion) of a drawing it made finds a code that draws it again."""
    import torch

    from inference.bundle import DEMO_BUNDLE, Bundle
    from training.report import load_networks, optimise_wplus

    if not Bundle.load(DEMO_BUNDLE, check_graphs=False).weights:
        pytest.skip("the committed demo bundle carries no torch weights yet (issue 21): SeFa and inversion need them")
    npz = tmp_path / "sefa.npz"
    assert main(["edit", "directions", "--method", "sefa", "--out", str(npz), "--k", "3"]) == 0
    d = Directions.load(npz)
    assert d.directions.shape[0] == 3 and np.all(d.std > 0)
    generator, _, _, _ = load_networks(DEMO_BUNDLE)
    with torch.no_grad():
        w = generator.mapping(torch.randn(2, generator.z_dim, generator=torch.Generator().manual_seed(1)))
        target = generator.synthesis(w, noise_mode="const")
    target = np.clip((target[:, 0].numpy() + 1) * 127.5, 0, 255).astype(np.uint8)
    start = generator.w_avg.expand(2, generator.num_ws, -1).clone()
    before, _ = optimise_wplus(generator, target, start, 0, 0.05)
    after, _ = optimise_wplus(generator, target, start, 60, 0.05)
    err = lambda x: np.mean((x.astype(float) - target) ** 2)  # noqa: E731
    assert err(after) < 0.5 * err(before)


def test_directions_and_grid_on_a_stylegan2_checkpoint(tmp_path):
    """`edit directions --generator x.pt` (a rosinality g_ema) and its grid: RGB tiles of the
    checkpoint's resolution, labelled with the file's direction names."""
    import torch

    from tests.training.editing.test_editing_checkpoints import fir_generator, rosinality_state

    ckpt = tmp_path / "ffhq.pt"
    torch.save({"g_ema": rosinality_state(fir_generator(16)), "latent_avg": torch.zeros(16)}, ckpt)
    npz, png = tmp_path / "sefa.npz", tmp_path / "grid.png"
    assert main(["edit", "directions", "--method", "sefa", "--generator", str(ckpt), "--out", str(npz), "--k", "2"]) == 0
    d = Directions.load(npz)
    assert d.directions.shape == (2, 16) and np.all(d.std > 0)
    Directions(d.directions, "sefa", d.layers, d.std, names=["first", "second"]).save(npz)
    assert main(["edit", "grid", "--generator", str(ckpt), "--directions", str(npz), "--out", str(png),
                 "--strengths=-3,0,3", "--no-labels"]) == 0
    tiles = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert tiles.shape == (2 * 16, 3 * 16, 3)
    assert main(["edit", "grid", "--generator", str(ckpt), "--directions", str(npz), "--out", str(png),
                 "--strengths=-3,0,3"]) == 0
    assert_labelled(cv2.imread(str(png), cv2.IMREAD_UNCHANGED), tiles, rows=2, columns=3, tile=16)
    assert Directions.load(npz).labels() == ["first", "second"]


def test_a_partial_checkpoint_is_one_line_at_the_cli(tmp_path, capsys):
    import torch

    from tests.training.editing.test_editing_checkpoints import fir_generator, rosinality_state

    state = rosinality_state(fir_generator(16))
    del state["to_rgb1.bias"]
    torch.save({"g_ema": state}, tmp_path / "cut.pt")
    assert main(["edit", "directions", "--method", "ganspace", "--generator", str(tmp_path / "cut.pt"),
                 "--out", str(tmp_path / "d.npz")]) == 2
    err = capsys.readouterr().err
    assert "cut.pt" in err and "missing to_rgb1.bias" in err and "Traceback" not in err


def test_grid_takes_w_plus_directions(tiny_bundle):
    """A W+ direction (num_ws * w_dim, like Paper II's) is applied whole: only the edited columns differ."""
    from inference.runtime import open_backend
    from training.editing.grid import editing_grid

    backend = open_backend(tiny_bundle)
    n = np.random.default_rng(0).standard_normal((1, 8 * 64))
    grid = editing_grid(backend, Directions(n / np.linalg.norm(n), "tensor", np.arange(8)), strengths=[0.0, 3.0])
    assert grid.shape == (32, 64)
    assert np.abs(grid[:, :32].astype(int) - grid[:, 32:]).max() > 0
    with pytest.raises(ValueError, match="W\\+ \\(8 x 64\\)"):
        editing_grid(backend, Directions(np.ones((1, 10)), "x", np.arange(8)))
