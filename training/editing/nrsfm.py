"""Paper III: rank-one non-rigid structure from motion and the landmark model R(q).

Thesis Sec 4.1-4.2 (L2095-2151, Alg 2 L772-786). N shapes of L 2D landmarks (arrays
[N, L, 2], from any extractor) are centred (each shape's centroid is its translation t)
and stacked into the measurement matrix X [2N x L] (rows 2n, 2n+1: x and y of shape n).

- Rigid part: X0 = U0 L0 V0^T from the top three singular vectors; M0 = U0 L0 holds the
  N affine 2x3 projections, B0 = V0^T the mean 3D shape (Eq 4-5). Centring first is what
  makes the rank-3 step right: without it the translations use up singular vectors.
- Non-rigid part: b_k = the first K right singular vectors of X - X0; B_k = d_k b_k^T with
  unit 3-vectors d_k fitted, together with the coefficients alpha, by gradient descent
  (Adam) on |X_hat - X|^2 + lambda sum_k (d_k.d_k - 1)^2 (Eq 10). The thesis writes the
  sum with a minus sign in Eq 4.13 and a plus in Eq 4.14 / Paper III Eq 2; the sign only
  flips alpha, and this module uses PLUS everywhere, so fitted alphas plug straight into R(q).
- Cameras: each M_n = K_n [I2|0] R_n by the flipped QR of Alg 2 (K upper triangular with a
  positive diagonal, R with orthonormal rows), completed with r3 = r1 x r2 and read as Euler
  angles with R = Rz Ry Rx (Eq 4.11).
- R(q) = K [I2|0] R(theta) [B0 + sum_k alpha_k B_k] + t 1^T (Eq 4.14), with
  q = (k11, k12, k22, theta_x, theta_y, theta_z, alpha_1..alpha_K, t_x, t_y): 8 + K numbers.
M0 and B0 are defined only up to a 3x3 transform G (M0 G, G^-1 B0 reproject the same).
The thesis leaves G as the SVD gives it; K then absorbs the distortion and the Euler
angles are read in a whitened, not a metric, frame (on the face-like shapes of the tests,
turned by known angles: median error 13.8 degrees; the issue saw 23). `metric=True` (the default here, a departure from the
thesis) first picks G by the Tomasi-Kanade metric constraints (`metric_upgrade`): every
camera's two rows orthogonal and of equal length, as a scaled-orthographic (weak
perspective) camera has. Reprojections are the same either way; the angles become real
head angles (median error 0.7 degrees on the same data, 0.00 without the non-rigid
motion) and K ~ s I. Compare fitted models by their
reprojections or subspaces, never basis vector by basis vector.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# ---- cameras and rotations -------------------------------------------------------------------
def camera_decomposition(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Alg 2: M [2x3] = K [2x2, upper triangular, positive diagonal] @ R [2x3, orthonormal rows]."""
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"camera decomposition: a projection must be 2x3, got {m.shape}")
    q, r_tilde = np.linalg.qr(np.flipud(m).T)       # M'^T = Q R~, Q [3x2], R~ [2x2]
    k2 = np.fliplr(np.flipud(r_tilde.T))              # K'' : upper triangular
    r2 = np.flipud(q.T)                               # R'
    s = np.diag(np.where(np.diag(k2) < 0, -1.0, 1.0))  # make K's diagonal positive
    return k2 @ s, s @ r2


def complete_rotation(r2: np.ndarray) -> np.ndarray:
    """3x3 rotation from its first two rows: r3 = r1 x r2."""
    r2 = np.asarray(r2, dtype=np.float64)
    return np.vstack([r2, np.cross(r2[0], r2[1])])


def rotation_from_euler(theta: np.ndarray) -> np.ndarray:
    """R(theta) = Rz(theta_z) Ry(theta_y) Rx(theta_x) (thesis Eq 4.11)."""
    tx, ty, tz = theta
    cx, sx, cy, sy, cz, sz = np.cos(tx), np.sin(tx), np.cos(ty), np.sin(ty), np.cos(tz), np.sin(tz)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def euler_from_rotation(r: np.ndarray) -> np.ndarray:
    """(theta_x, theta_y, theta_z) with R = Rz Ry Rx; theta_y in [-pi/2, pi/2]."""
    theta_y = -np.arcsin(np.clip(r[2, 0], -1.0, 1.0))
    theta_x = np.arctan2(r[2, 1], r[2, 2])
    theta_z = np.arctan2(r[1, 0], r[0, 0])
    return np.array([theta_x, theta_y, theta_z])


# ---- measurement matrix -------------------------------------------------------------------------
def measurement_matrix(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred measurement matrix X [2N, L] and translations t [N, 2] of landmarks [N, L, 2]."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[2] != 2 or pts.shape[1] < 4:
        raise ValueError(f"nrsfm: landmarks must be [shapes, points >= 4, 2], got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("nrsfm: landmarks contain NaN or inf (a failed detection?); drop those shapes")
    t = pts.mean(axis=1)
    x = np.transpose(pts - t[:, None], (0, 2, 1)).reshape(-1, pts.shape[1])
    return x, t


# ---- the model ----------------------------------------------------------------------------------
@dataclass
class ShapeModel:
    """B0 [3, L] rigid shape, d [3, K] unit directions, b [K, L] non-rigid profiles."""

    b0: np.ndarray
    d: np.ndarray
    b: np.ndarray

    @property
    def num_bases(self) -> int:
        return self.b.shape[0]

    @property
    def param_size(self) -> int:
        return 8 + self.num_bases

    def bases(self) -> np.ndarray:
        """B_k = d_k b_k^T, [K, 3, L]."""
        return self.d.T[:, :, None] * self.b[:, None, :]

    def shape3d(self, alpha: np.ndarray) -> np.ndarray:
        """B0 + sum_k alpha_k B_k for alpha [K] (or [N, K] -> [N, 3, L])."""
        return self.b0 + np.tensordot(np.asarray(alpha, dtype=np.float64), self.bases(), axes=(-1, 0))

    def render(self, q: np.ndarray) -> np.ndarray:
        """R(q): landmarks [L, 2] for one q, or [N, L, 2] for q [N, 8+K] (Eq 4.14)."""
        q = np.asarray(q, dtype=np.float64)
        if q.ndim == 2:
            return np.stack([self.render(row) for row in q])
        if q.shape != (self.param_size,):
            raise ValueError(f"nrsfm: q must have {self.param_size} entries, got {q.shape}")
        k = np.array([[q[0], q[1]], [0.0, q[2]]])
        m = k @ rotation_from_euler(q[3:6])[:2]
        x = m @ self.shape3d(q[6:6 + self.num_bases]) + q[-2:, None]
        return x.T

    def fit_q(self, landmarks: np.ndarray, q0: np.ndarray | None = None) -> np.ndarray:
        """q* = argmin_q |R(q) - X_new|^2 (Eq 11) for landmarks [L, 2], by least squares.

        Starts from the rigid fit: t = centroid, M = X_c B0^+ decomposed by Alg 2, alpha = 0.
        """
        from scipy.optimize import least_squares

        pts = np.asarray(landmarks, dtype=np.float64)
        if pts.shape != (self.b0.shape[1], 2):
            raise ValueError(f"nrsfm: expected landmarks [{self.b0.shape[1]}, 2], got {pts.shape}")
        if q0 is None:
            t = pts.mean(axis=0)
            m = (pts - t).T @ np.linalg.pinv(self.b0)
            q0 = params_from_projection(m, np.zeros(self.num_bases), t)
        res = least_squares(lambda q: (self.render(q) - pts).ravel(), q0, method="lm")
        return res.x

    def save(self, path) -> None:
        np.savez(path, b0=self.b0, d=self.d, b=self.b)

    @classmethod
    def load(cls, path) -> "ShapeModel":
        data = np.load(path)
        return cls(b0=data["b0"], d=data["d"], b=data["b"])


def metric_upgrade(projections: np.ndarray) -> np.ndarray:
    """Tomasi-Kanade: the 3x3 G for which every M_n G [2x3] has orthogonal rows of equal length.

    With Q = G G^T the constraints m1 Q m1 = m2 Q m2 and m1 Q m2 = 0 are linear in Q's six
    entries; Q is their least-squares null vector, scaled so that the cameras' mean squared
    scale is 1 (the 3D shape then comes out in landmark units), and G = V sqrt(Lambda) from
    its eigendecomposition (det G > 0). G is fixed only up to a rotation (`face_camera`
    settles it) and the depth reversal all affine structure from motion has (`fit_nrsfm`'s
    `near_point` settles it).
    """
    p = np.asarray(projections, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (2, 3):
        raise ValueError(f"metric upgrade: projections must be [N, 2, 3], got {p.shape}")

    def coefficients(a, b):  # a^T Q b in terms of (q11, q12, q13, q22, q23, q33)
        return np.stack([a[:, 0] * b[:, 0], a[:, 0] * b[:, 1] + a[:, 1] * b[:, 0],
                         a[:, 0] * b[:, 2] + a[:, 2] * b[:, 0], a[:, 1] * b[:, 1],
                         a[:, 1] * b[:, 2] + a[:, 2] * b[:, 1], a[:, 2] * b[:, 2]], axis=-1)

    m1, m2 = p[:, 0], p[:, 1]
    a = np.concatenate([coefficients(m1, m1) - coefficients(m2, m2), coefficients(m1, m2)])
    _, sv, vt = np.linalg.svd(a, full_matrices=False)
    if sv.size < 6 or sv[-2] < 1e-6 * sv[0]:
        raise ValueError("nrsfm: the metric upgrade needs shapes seen under several different rotations; "
                         "these views do not fix it (use metric=False)")
    q = vt[-1] / (0.5 * (coefficients(m1, m1) + coefficients(m2, m2)).mean(axis=0) @ vt[-1])
    big_q = np.array([[q[0], q[1], q[2]], [q[1], q[3], q[4]], [q[2], q[4], q[5]]])
    lam, v = np.linalg.eigh(big_q)
    if lam[0] <= 1e-9 * lam[-1]:
        raise ValueError("nrsfm: the metric constraints give no positive-definite metric (the cameras are not "
                         "close to scaled orthographic); use metric=False")
    g = v * np.sqrt(lam)
    return g if np.linalg.det(g) > 0 else g * np.array([1.0, 1.0, -1.0])


def params_from_projection(m: np.ndarray, alpha: np.ndarray, t: np.ndarray) -> np.ndarray:
    """q from an affine projection M [2x3], coefficients alpha [K] and translation t [2]."""
    k, r2 = camera_decomposition(m)
    theta = euler_from_rotation(complete_rotation(r2))
    return np.concatenate([[k[0, 0], k[0, 1], k[1, 1]], theta, alpha, t])


# ---- fitting --------------------------------------------------------------------------------------
@dataclass
class NRSfMFit:
    model: ShapeModel
    q: np.ndarray          # [N, 8+K], R(q_n) reproduces the fitted landmarks of shape n
    projections: np.ndarray  # [N, 2, 3] the rigid step's M_n
    alpha: np.ndarray      # [N, K]
    rms: float             # root mean square 2D reprojection error over all coordinates
    metric: bool = True    # theta are metric angles (metric_upgrade) or the thesis' SVD frame

    def reproject(self) -> np.ndarray:
        return self.model.render(self.q)


def fit_nrsfm(landmarks: np.ndarray, num_bases: int = 12, unit_penalty: float = 1.0,
              steps: int = 300, optimizer: str = "lbfgs", lr: float = 0.01, seed: int = 0,
              face_camera: bool = True, metric: bool = True, near_point: int | None = None) -> NRSfMFit:
    """Rigid SVD + rank-one non-rigid bases by gradient descent (Paper III Eq 3-10).

    num_bases: K (the thesis uses 12). unit_penalty: lambda of the (d.d - 1)^2 term, in
    units of the data term's mean (so it does not depend on N or the landmark scale);
    1 keeps |d_k| within a fraction of a percent of 1 in the tests. optimizer: "lbfgs"
    (default; gradient-based with a line search, converges in a few hundred steps) or
    "adam" (plain gradient descent as in the paper, needs thousands of steps and `lr`).
    face_camera: turn the model so that the mean camera rotation is the identity (theta
    centred on 0), as Paper III does to steady the regressor.
    metric: upgrade the rigid step to a metric frame first (`metric_upgrade`), so theta are
    true rotation angles; False is the thesis' Alg 2 as written (angles in the SVD's frame).
    near_point: index of a landmark nearer the camera than the shape's centre in the mean
    view (the nose tip, 30 in the 68-point layout). 2D landmarks cannot tell a shape from its
    mirror in depth, which flips the signs of theta_x and theta_y; with near_point the fit
    keeps the solution whose near_point faces the camera (image x right, y down, so depth
    -z is towards the viewer).
    """
    import torch

    x, t = measurement_matrix(landmarks)
    n, l = x.shape[0] // 2, x.shape[1]
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"nrsfm: optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    if not 1 <= num_bases <= l - 3:
        raise ValueError(f"nrsfm: num_bases={num_bases} must be in 1..{l - 3} for {l} landmarks")
    if near_point is not None and not 0 <= near_point < l:
        raise ValueError(f"nrsfm: near_point {near_point} is not a landmark index (0..{l - 1})")
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    m0, b0 = u[:, :3] * s[:3], vt[:3]
    if metric:
        g = metric_upgrade(m0.reshape(n, 2, 3))
        m0, b0 = m0 @ g, np.linalg.solve(g, b0)
    dx = x - m0 @ b0
    b = np.linalg.svd(dx, full_matrices=False)[2][:num_bases]

    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(x).reshape(n, 2, l)
    mt = torch.as_tensor(m0).reshape(n, 2, 3)
    rigid = mt @ torch.as_tensor(b0)
    bt = torch.as_tensor(b)
    d = torch.randn(3, num_bases, generator=gen, dtype=torch.float64)
    d = (d / d.norm(dim=0)).requires_grad_(True)
    alpha = (1e-3 * torch.randn(n, num_bases, generator=gen, dtype=torch.float64)).requires_grad_(True)
    scale = float((xt - rigid).pow(2).mean().sqrt()) or 1.0
    def objective():
        # M_n sum_k alpha_nk d_k b_k^T = sum_k (alpha_nk M_n d_k) b_k^T: [N, 2, K] @ [K, L].
        coef = (mt @ d) * alpha[:, None, :]
        err = ((rigid + coef @ bt - xt) / scale).pow(2).mean()
        return err + unit_penalty * err.detach().clamp_min(1e-12) * ((d * d).sum(0) - 1).pow(2).sum()

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([d, alpha], lr=1.0, max_iter=steps, tolerance_grad=1e-12,
                                tolerance_change=1e-15, history_size=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = objective()
            loss.backward()
            return loss
        opt.step(closure)
    else:
        opt = torch.optim.Adam([d, alpha], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            objective().backward()
            opt.step()
    d_fit = d.detach().numpy()
    projections = m0.reshape(n, 2, 3)
    if face_camera:
        # Paper III rotates the basis shapes to face the camera at theta = 0: turn the 3D
        # frame by the mean camera rotation (projected back onto SO(3)). M_n B = (M_n Rm^T)(Rm B),
        # so every reprojection is unchanged and the Euler angles now centre on zero.
        rotations = np.stack([complete_rotation(camera_decomposition(m)[1]) for m in projections])
        u_, _, vt_ = np.linalg.svd(rotations.sum(axis=0))
        mean_rot = u_ @ np.diag([1.0, 1.0, np.linalg.det(u_ @ vt_)]) @ vt_
        b0, d_fit, projections = mean_rot @ b0, mean_rot @ d_fit, projections @ mean_rot.T
    if near_point is not None and b0[2, near_point] - b0[2].mean() > 0:
        # The depth-mirrored solution: z -> -z in the 3D frame (P = diag(1, 1, -1)), cameras M P.
        # Same reprojections; the rotations become P R P (theta_x, theta_y negated).
        flip = np.diag([1.0, 1.0, -1.0])
        b0, d_fit, projections = flip @ b0, flip @ d_fit, projections @ flip
    model = ShapeModel(b0=b0, d=d_fit, b=b)
    a = alpha.detach().numpy()
    q = np.stack([params_from_projection(projections[i], a[i], t[i]) for i in range(n)])
    fitted = model.render(q)
    rms = float(np.sqrt(np.mean((fitted - np.asarray(landmarks, dtype=np.float64)) ** 2)))
    return NRSfMFit(model=model, q=q, projections=projections, alpha=a, rms=rms, metric=metric)


def render_torch(model: ShapeModel, q):
    """R(q) for a batch q [B, 8+K] in torch (differentiable), landmarks [B, L, 2]."""
    import torch

    b0 = torch.as_tensor(model.b0, dtype=q.dtype)
    bases = torch.as_tensor(model.bases(), dtype=q.dtype)
    kk = model.num_bases
    zero = torch.zeros_like(q[:, 0])
    k = torch.stack([torch.stack([q[:, 0], q[:, 1]], -1), torch.stack([zero, q[:, 2]], -1)], -2)
    cx, sx = torch.cos(q[:, 3]), torch.sin(q[:, 3])
    cy, sy = torch.cos(q[:, 4]), torch.sin(q[:, 4])
    cz, sz = torch.cos(q[:, 5]), torch.sin(q[:, 5])
    one = torch.ones_like(zero)

    def mat(rows):
        return torch.stack([torch.stack(r, -1) for r in rows], -2)

    rx = mat([[one, zero, zero], [zero, cx, -sx], [zero, sx, cx]])
    ry = mat([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rz = mat([[cz, -sz, zero], [sz, cz, zero], [zero, zero, one]])
    m = k @ (rz @ ry @ rx)[:, :2]
    shape = b0 + torch.einsum("bk,kcl->bcl", q[:, 6:6 + kk], bases)
    return (m @ shape + q[:, -2:, None]).transpose(1, 2)
