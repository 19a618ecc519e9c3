"""Paper I (tau-GAN): a standardised multilinear model of W+ codes (thesis L1423-1618).

Codes of P people x E expressions x R views are standardised per latent dimension (Paper I
standardises; Paper II only centres, see `expression`) and arranged as T [N x P x E x R].
With the HOSVD T = S x1 U1 x2 U2 x3 U3 x4 U4 and C = S x1 U1, a code is modelled as
    y_hat = C x2 q2 x3 q3 x4 q4                                   (Eq 3)
with subspace parameters q_k = U_k^T q'_k. The style-separated variant (Sec III-C) builds
one such model per W+ layer (T_s [L x P x E x R]).

Parameters of a new code come from alternating least squares (Eq 8-11): with two of
q2, q3, q4 fixed the model is linear in the third, y_hat = A(k) q_k, and each step solves
    min |A(k) q_k - y|^2 + ridge |q_k|^2 + lasso |q'_k|_1         (Eq 7)
(ridge alone in closed form; with lasso as an elastic net in q'_k = U_k q_k by FISTA,
which needs the parameter modes untruncated so that U_k is square).
The rotation edit (Eq 13-14): m = u_2^(4) - u_1^(4) (rows of U4), q4 <- q4 + gamma m.
Defaults ridge = lasso = 1 follow the paper's validation (Fig 9: "lambda ~ 1").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.editing.tensor import multi_mode_dot, unfold


def elastic_net(a: np.ndarray, y: np.ndarray, ridge: float, lasso: float,
                x0: np.ndarray | None = None, iters: int = 500) -> np.ndarray:
    """argmin_x |a x - y|^2 + ridge |x|^2 + lasso |x|_1 by FISTA (accelerated proximal gradient)."""
    x = np.zeros(a.shape[1]) if x0 is None else np.array(x0, dtype=np.float64)
    lipschitz = 2 * (np.linalg.norm(a, 2) ** 2 + ridge)
    z, t = x.copy(), 1.0
    for _ in range(iters):
        grad = 2 * a.T @ (a @ z - y) + 2 * ridge * z
        v = z - grad / lipschitz
        x_new = np.sign(v) * np.maximum(np.abs(v) - lasso / lipschitz, 0.0)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = x_new + (t - 1) / t_new * (x_new - x)
        x, t = x_new, t_new
    return x


@dataclass
class _Block:
    """One multilinear model: core in latent space [L, J2, J3, J4] and U2..U4."""

    core: np.ndarray
    factors: list[np.ndarray]

    def predict(self, qs: list[np.ndarray]) -> np.ndarray:
        return np.einsum("dabc,a,b,c->d", self.core, *qs)

    def design(self, qs: list[np.ndarray], k: int) -> np.ndarray:
        """A(k) of Eq 9-11: the model as a matrix acting on q_k with the others fixed."""
        letters = "abc"
        others = [i for i in range(3) if i != k]
        spec = f"d{letters},{letters[others[0]]},{letters[others[1]]}->d{letters[k]}"
        return np.einsum(spec, self.core, qs[others[0]], qs[others[1]])


@dataclass
class TauGAN:
    """Paper I's tensor model: standardisation + one block (vectorised) or one per layer."""

    mean: np.ndarray              # [*latent]
    std: np.ndarray               # [*latent]
    blocks: list[_Block]
    latent_shape: tuple[int, ...]
    style_separated: bool = False
    ridge: float = 1.0
    lasso: float = 1.0
    sweeps: int = 10

    @classmethod
    def fit(cls, codes: np.ndarray, style_separated: bool = False,
            ranks: tuple[int | None, int | None, int | None] = (None, None, None), **settings) -> "TauGAN":
        """codes [P, E, R, *latent]; style_separated needs latent = (num_ws, w_dim)."""
        codes = np.asarray(codes, dtype=np.float64)
        if codes.ndim < 4:
            raise ValueError(f"tau-GAN: codes must be [people, expressions, views, *latent], got {codes.shape}")
        latent_shape = codes.shape[3:]
        if style_separated and len(latent_shape) != 2:
            raise ValueError("tau-GAN: the style-separated model needs codes [..., num_ws, w_dim]")
        flat = codes.reshape(-1, *latent_shape)
        mean, std = flat.mean(axis=0), flat.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        t = (codes - mean) / std
        parts = [t[..., s, :] for s in range(latent_shape[0])] if style_separated \
            else [t.reshape(*codes.shape[:3], -1)]
        blocks = []
        for part in parts:
            tensor = np.moveaxis(part, -1, 0)  # [L, P, E, R]
            factors = []
            for mode, rank in zip((1, 2, 3), ranks):
                u = np.linalg.svd(unfold(tensor, mode), full_matrices=False)[0]
                factors.append(u[:, :rank] if rank is not None else u)
            core = multi_mode_dot(tensor, factors, [1, 2, 3], transpose=True)
            blocks.append(_Block(core=core, factors=factors))
        return cls(mean=mean, std=std, blocks=blocks, latent_shape=tuple(latent_shape),
                   style_separated=style_separated, **settings)

    def _split(self, code: np.ndarray) -> list[np.ndarray]:
        y = (np.asarray(code, dtype=np.float64).reshape(self.latent_shape) - self.mean) / self.std
        return [y[s] for s in range(len(self.blocks))] if self.style_separated else [y.ravel()]

    def _join(self, parts: list[np.ndarray]) -> np.ndarray:
        y = np.stack(parts) if self.style_separated else parts[0]
        return y.reshape(self.latent_shape) * self.std + self.mean

    def estimate(self, code: np.ndarray) -> list[list[np.ndarray]]:
        """Subspace parameters [q2, q3, q4] of one code, per block, by ALS (Eq 8-11)."""
        out = []
        for block, y in zip(self.blocks, self._split(code)):
            qs = [u.mean(axis=0) for u in block.factors]  # the average training code's parameters
            for _ in range(self.sweeps):
                for k in range(3):
                    a = block.design(qs, k)
                    u = block.factors[k]
                    if self.lasso > 0:
                        if u.shape[0] != u.shape[1]:
                            raise ValueError("tau-GAN: the lasso term needs untruncated parameter modes")
                        # q' = U q  ->  A q = A U^T q'; |q|^2 = |q'|^2.
                        qc = elastic_net(a @ u.T, y, self.ridge, self.lasso, x0=u @ qs[k])
                        qs[k] = u.T @ qc
                    elif self.ridge > 0:
                        qs[k] = np.linalg.solve(a.T @ a + self.ridge * np.eye(a.shape[1]), a.T @ y)
                    else:
                        qs[k] = np.linalg.lstsq(a, y, rcond=None)[0]
            out.append(qs)
        return out

    def synthesize(self, params: list[list[np.ndarray]]) -> np.ndarray:
        """The code (original W+ scale) of per-block parameters [q2, q3, q4]."""
        return self._join([b.predict(qs) for b, qs in zip(self.blocks, params)])

    def rotate(self, params: list[list[np.ndarray]], gamma: float,
               source_view: int = 0, target_view: int = 1) -> np.ndarray:
        """Rotation edit (Eq 13-14): q4 + gamma (u_target^(4) - u_source^(4)), synthesised."""
        edited = []
        for block, (q2, q3, q4) in zip(self.blocks, params):
            u4 = block.factors[2]
            edited.append([q2, q3, q4 + gamma * (u4[target_view] - u4[source_view])])
        return self.synthesize(edited)
