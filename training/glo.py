"""GLO inside a GAN run (`train gan --glo WEIGHT`): some training drawings each get a learned
z of their own (Bojanowski et al. 2018, "Optimizing the latent space of generative networks").

Why: on this CPU's schedules the adversarial game alone draws one template (docs/training.md).
The synthesis network can learn to draw hundreds of different characters from one z each
(the warm-up: pixel error alone, synthesis and codes trained, mapping kept), and a GAN with a
new D that starts there keeps them, and its random samples grow varied, only while every G step
also pulls G(mapping(z_i)) towards drawing i (the pull). Without the pull the variety was gone
within 4 kimg. It wants a generator whose samples are already varied (`--init-generator`):
from noise or a short plain run's one template the GAN drew smudges for 20-50 kimg
(docs/training.md; GanRun.check_glo_start warns)."""
from __future__ import annotations

import torch

from inference import tensors

CODES_SEED = 5  # which drawings get a code, and their first codes (kept in the state)


def keep_on_sphere(z: torch.Tensor) -> None:
    """The codes back onto the sphere the Gaussian's samples lie near, in place (the mapping
    normalises z anyway; the sphere keeps Adam's steps in scale)."""
    with torch.no_grad():
        z.mul_(z.shape[1] ** 0.5 / z.norm(dim=1, keepdim=True))


class GloCodes:
    """The drawings with a code (indices into the run's reals), their codes, and the two
    optimisers: the warm-up's (synthesis network and codes) and the pull's (codes; G's own
    Adam takes G's share)."""

    WARMUP_LR = 0.002        # the synthesis network's in the warm-up
    WARMUP_CODES_LR = 0.05   # the codes' in the warm-up

    def __init__(self, G, reals_count: int, count: int, z_dim: int, pull_lr: float, betas, device):
        if count > reals_count:
            raise ValueError(f"gan: glo_drawings {count} is more than the {reals_count} training drawings; "
                             f"lower --glo-drawings")
        rng = torch.Generator().manual_seed(CODES_SEED)
        self.index = torch.randperm(reals_count, generator=rng)[:count].to(device)
        self.codes = torch.nn.Parameter(torch.randn(count, z_dim, generator=rng).to(device))
        keep_on_sphere(self.codes)
        self.opt_warmup = torch.optim.Adam([{"params": G.synthesis.parameters(), "lr": self.WARMUP_LR},
                                            {"params": [self.codes], "lr": self.WARMUP_CODES_LR}], betas=betas)
        self.opt_pull = torch.optim.Adam([self.codes], lr=pull_lr, betas=betas)

    def batch(self, reals: torch.Tensor, n: int, layout) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes, their drawings as G draws) of n drawings picked at random."""
        pick = torch.randint(len(self.index), (n,), device=self.index.device)
        target = tensors.from_uint8(reals[self.index[pick]]).contiguous(memory_format=layout)
        return self.codes[pick], target

    def state_dict(self) -> dict:
        return {"index": self.index, "codes": self.codes.detach(), "opt_warmup": self.opt_warmup.state_dict(),
                "opt_pull": self.opt_pull.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.index = state["index"].to(self.index.device)
        with torch.no_grad():
            self.codes.copy_(state["codes"])
        self.opt_warmup.load_state_dict(state["opt_warmup"])
        self.opt_pull.load_state_dict(state["opt_pull"])
