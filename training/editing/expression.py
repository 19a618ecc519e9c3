"""Paper II: a multilinear model of W+ for expression and rotation edits (thesis L1745-1831).

Codes of P people x E expressions x I intensities x R views form the 5-mode tensor
T [D x P x E x I x R] (D = num_ws * w_dim). Its HOSVD after removing the mean code
(Paper II centres only; Paper I also standardises, see `taugan`) is
    T - T_mean = S x1 U1 x2 U2 x3 U3 x4 U4 x5 U5,        C = S x1 U1 (Eq 1-2),
and a code is modelled as  w_hat = w_mean + C x2 q2 x3 q3 x4 q4 x5 q5  (Eq 3) with
q_i = U_i^T q'_i, where q'_i are the "canonical" parameters (one-hot for a training code).

- `recover`: q'_2..q'_5 for new codes by Adam on |w_hat - w|^2 plus the Tikhonov and
  sum-to-one penalties on the canonical parameters (Eq 4-6);
- `recover_full_rank`: the relaxed model with one free parameter tensor Q (Eq 8). It is
  linear least squares, so it is solved in closed form (ridge / minimum norm), which is
  what Adam would converge to;
- intensity truncation (`intensity_rank=1`, Eq 9-12): U4 keeps only its first column u4,
  whose sign is fixed so that it grows with intensity (the SVD's sign is arbitrary and a
  flipped u4 flips every expression direction);
- `expression_direction` / `rotation_direction`: the global directions applied straight in
  W+ (Eq 13-18), with q2_bar, q5_bar the means of the rows of U2, U5 (the thesis leaves
  "mean parameter" undefined; the mean row is the parameter of the average person/view).

C is computed as (T - T_mean) x2 U2^T ... x5 U5^T, which equals S x1 U1 when the latent
mode is not truncated, so the D x D factor U1 is never formed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.editing.tensor import multi_mode_dot, unfold


@dataclass
class RecoverySettings:
    """Adam recovery of canonical parameters (Paper II Eq 6).

    Defaults were chosen on the synthetic planted model of the tests (see docs/editing.md):
    they are the thesis's form with values it does not give.
    """

    tikhonov: float = 1e-3   # lambda_1,i on |q'_i|^2, all modes
    sum_to_one: float = 1.0  # lambda_2,i on (q'_i . 1 - 1)^2, all modes
    steps: int = 200
    lr: float = 0.05
    device: str = "cpu"      # "cuda" for thesis-size models (9216 x 4800 core: ~0.3 s/step on 2 CPU cores)


class ExpressionModel:
    """Paper II's tensor model of W+ codes (see the module docstring)."""

    def __init__(self, mean: np.ndarray, core: np.ndarray, factors: list[np.ndarray],
                 latent_shape: tuple[int, ...]):
        self.mean = mean                  # [D]
        self.core = core                  # [D, J2, J3, J4, J5]
        self.factors = factors            # U2..U5, [I_n, J_n]
        self.latent_shape = tuple(latent_shape)

    # ---- building ---------------------------------------------------------------------
    @classmethod
    def fit(cls, codes: np.ndarray, intensity_rank: int | None = 1,
            ranks: tuple[int | None, int | None, int | None] = (None, None, None)) -> "ExpressionModel":
        """Build the model from codes [P, E, I, R, *latent] (latent: (D,) or (num_ws, w_dim)).

        intensity_rank: 1 is Paper II's truncated intensity mode (needed for the expression
        direction); None keeps the full intensity mode. ranks: optional truncation of the
        person, expression and view modes.
        """
        codes = np.asarray(codes, dtype=np.float64)
        if codes.ndim < 5:
            raise ValueError(f"expression model: codes must be [people, expressions, intensities, "
                             f"views, *latent], got shape {codes.shape}")
        p, e, i, r = codes.shape[:4]
        latent_shape = codes.shape[4:]
        flat = codes.reshape(p, e, i, r, -1)
        mean = flat.reshape(-1, flat.shape[-1]).mean(axis=0)
        centred = np.moveaxis(flat - mean, -1, 0)  # [D, P, E, I, R]
        # Factors of the parameter modes only: the latent mode stays whole (see docstring).
        mode_ranks = [ranks[0], ranks[1], intensity_rank, ranks[2]]
        factors = []
        for mode, rank in zip(range(1, 5), mode_ranks):
            # HOSVD (Alg 1) for this mode: left singular vectors of its unfolding.
            u = np.linalg.svd(unfold(centred, mode), full_matrices=False)[0]
            factors.append(u[:, :rank] if rank is not None else u)
        u4 = factors[2]
        # Fix the sign of every intensity vector so that it grows with intensity.
        slope = np.arange(i) - (i - 1) / 2
        signs = np.sign(slope @ u4)
        signs[signs == 0] = 1
        factors[2] = u4 * signs
        core = multi_mode_dot(centred, factors, [1, 2, 3, 4], transpose=True)
        return cls(mean=mean, core=core, factors=factors, latent_shape=latent_shape)

    def save(self, path) -> None:
        """One .npz with the mean, core, factors U2..U5 and the latent shape."""
        np.savez(path, mean=self.mean, core=self.core, latent_shape=np.array(self.latent_shape),
                 **{f"u{i}": u for i, u in zip(range(2, 6), self.factors)})

    @classmethod
    def load(cls, path) -> "ExpressionModel":
        try:
            data = np.load(path, allow_pickle=False)
            return cls(mean=data["mean"], core=data["core"], factors=[data[f"u{i}"] for i in range(2, 6)],
                       latent_shape=tuple(int(n) for n in data["latent_shape"]))
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not an expression model file saved by ExpressionModel.save ({exc})") from exc

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(u.shape[0] for u in self.factors)

    # ---- the model -----------------------------------------------------------------------
    def subspace(self, canonical: list[np.ndarray]) -> list[np.ndarray]:
        """q_i = U_i^T q'_i for canonical parameters [B, I_n] of the four modes."""
        return [np.asarray(q, dtype=np.float64) @ u for q, u in zip(canonical, self.factors)]

    def reconstruct(self, canonical: list[np.ndarray]) -> np.ndarray:
        """w_hat [B, *latent] from canonical parameters q'_2..q'_5, each [B, I_n] (Eq 2)."""
        q2, q3, q4, q5 = self.subspace(canonical)
        w = self.mean + np.einsum("dabcr,na,nb,nc,nr->nd", self.core, q2, q3, q4, q5)
        return w.reshape((-1,) + self.latent_shape)

    def reconstruct_full_rank(self, q: np.ndarray) -> np.ndarray:
        """w_hat [B, *latent] from canonical parameter tensors Q [B, P, E, I, R] (Eq 8)."""
        sub = multi_mode_dot(np.asarray(q, dtype=np.float64), self.factors, [1, 2, 3, 4], transpose=True)
        w = self.mean + np.einsum("dabcr,nabcr->nd", self.core, sub)
        return w.reshape((-1,) + self.latent_shape)

    # ---- parameter recovery ----------------------------------------------------------------
    def recover(self, codes: np.ndarray, settings: RecoverySettings | None = None) -> list[np.ndarray]:
        """Canonical parameters q'_2..q'_5 (each [B, I_n]) of codes [B, *latent], by Adam."""
        import torch

        s = settings or RecoverySettings()
        w = torch.as_tensor(self._flatten(codes) - self.mean, dtype=torch.float64, device=s.device)
        core = torch.as_tensor(self.core, device=s.device)
        us = [torch.as_tensor(u, device=s.device) for u in self.factors]
        # Start from the average training code's parameters (uniform weights, sum one).
        params = [torch.full((w.shape[0], u.shape[0]), 1.0 / u.shape[0], dtype=torch.float64,
                             device=s.device, requires_grad=True) for u in us]
        opt = torch.optim.Adam(params, lr=s.lr)
        for _ in range(s.steps):
            opt.zero_grad()
            w_hat = _contract(core, [q @ u for q, u in zip(params, us)])
            loss = ((w_hat - w) ** 2).sum()
            for q in params:
                loss = loss + s.tikhonov * (q ** 2).sum() + s.sum_to_one * ((q.sum(1) - 1) ** 2).sum()
            loss.backward()
            opt.step()
        return [q.detach().cpu().numpy() for q in params]

    def recover_full_rank(self, codes: np.ndarray, ridge: float = 0.0) -> np.ndarray:
        """Canonical parameter tensors Q [B, P, E, I, R] minimising |w_hat(Q) - w|^2 + ridge |Q|^2.

        ridge = 0 gives the minimum-norm least-squares solution.
        """
        w = self._flatten(codes) - self.mean
        # Linear map from canonical Q to the code: A = unfold(C x2 U2 ... x5 U5, latent mode).
        a = multi_mode_dot(self.core, self.factors, [1, 2, 3, 4]).reshape(self.core.shape[0], -1)
        if ridge > 0:
            q = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ w.T).T
        else:
            q = np.linalg.lstsq(a, w.T, rcond=None)[0].T
        return q.reshape((-1,) + self.shape)

    # ---- global directions in W+ -----------------------------------------------------------
    def _mean_row(self, mode: int) -> np.ndarray:
        return self.factors[mode].mean(axis=0)

    def _check_truncated(self):
        if self.core.shape[3] != 1:
            raise ValueError("expression model: global directions need the truncated intensity "
                             "mode; build the model with intensity_rank=1")

    def expression_direction(self, expression: int) -> np.ndarray:
        """n_expr (Eq 13-14) for expression index e, shaped like a code; edit: w + q4 * n."""
        self._check_truncated()
        n_expr = self.factors[1].shape[0]
        if not 0 <= expression < n_expr:
            raise ValueError(f"expression model: expression {expression} must be in 0..{n_expr - 1}")
        c = self.core[:, :, :, 0, :]
        n = np.einsum("dabr,a,b,r->d", c, self._mean_row(0), self.factors[1][expression],
                      self._mean_row(3))
        return n.reshape(self.latent_shape)

    def rotation_direction(self, source_view: int = 0, target_view: int = 1) -> np.ndarray:
        """n_rot (Eq 16-18) from one view to another, shaped like a code; edit: w + beta * n.

        For the thesis's two views the canonical parameter is (1, -1)/sqrt(2) (Eq 16); here
        its general form (e_target - e_source)/sqrt(2), which points from source to target.
        """
        self._check_truncated()
        r = self.factors[3].shape[0]
        if not (0 <= source_view < r and 0 <= target_view < r) or source_view == target_view:
            raise ValueError(f"expression model: views must be two different indices in 0..{r - 1}")
        canonical = np.zeros(r)
        canonical[target_view], canonical[source_view] = 1 / np.sqrt(2), -1 / np.sqrt(2)
        q5 = canonical @ self.factors[3]
        q4_bar = float(self._mean_row(2)[0])
        c = self.core[:, :, :, 0, :]
        n = q4_bar * np.einsum("dabr,a,b,r->d", c, self._mean_row(0), self._mean_row(1), q5)
        return n.reshape(self.latent_shape)

    def _flatten(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.float64)
        d = self.core.shape[0]
        if codes.size % d or codes.shape[-len(self.latent_shape):] != self.latent_shape:
            raise ValueError(f"expression model: codes of shape {codes.shape} do not end in the "
                             f"model's latent shape {self.latent_shape}")
        return codes.reshape(-1, d)


def _contract(core, qs):
    """w [B, D] = core [D, J2, J3, J4, J5] contracted with q2..q5 [B, J_n].

    The largest parameter mode (people, usually) is contracted first by one matmul, so the
    intermediate is [D * (other J), B]; the small modes follow as broadcast sums. This is
    several times faster than torch.einsum's default path for the five-way product.
    """
    d = core.shape[0]
    first = max(range(4), key=lambda k: qs[k].shape[1])
    rest = [k for k in range(4) if k != first]
    perm = [0] + [1 + k for k in rest] + [1 + first]
    t = core.permute(perm).reshape(-1, qs[first].shape[1]) @ qs[first].T  # [D*J.., B]
    for k in reversed(rest):
        t = (t.reshape(-1, qs[k].shape[1], qs[k].shape[0]) * qs[k].T[None]).sum(1)
    return t.reshape(d, -1).T


def expression_accuracy(model: ExpressionModel, canonical_expression: np.ndarray,
                        labels: np.ndarray) -> float:
    """Share of codes whose largest canonical expression weight is their labelled expression."""
    return float(np.mean(np.argmax(canonical_expression, axis=1) == np.asarray(labels)))
