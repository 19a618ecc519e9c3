"""The tensors of a published StyleGAN2 checkpoint as the project's Generator.

Shared by the format readers (`rosinality`, `stylegan2_ada`): a state-dict reader that
lists everything a partial file lacks, the channel schedule the project's networks can
hold, the assembly into `Generator(resample='fir')`, and w_avg where a file has none.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from inference.model_files import ModelFileError
from inference.networks import Generator

W_AVG_SAMPLES = 10000  # z codes averaged for w_avg when a file carries none

# A checkpoint file is unreadable, of an unknown format, or partial: one error class for
# every model file, so a command catches one.
CheckpointFormatError = ModelFileError


@dataclass
class LoadedGenerator:
    generator: Generator  # eval mode, CPU
    path: Path
    format: str           # 'rosinality', 'psp', 'e4e', 'stylegan2-ada' or 'newsnow'
    w_avg_source: str     # where generator.w_avg came from, said in logs and result files


class StateReader:
    """Takes tensors by name from a state dict and remembers every name that is missing, so
    that one error lists all a partial file lacks (not only the first).

    `take(source, target)` also files the tensor under the project's name in `tensors`
    ({project name: (file name, tensor)}, what `build_generator` takes).
    """

    def __init__(self, path: Path, state: dict, what: str):
        self.path, self.state, self.what = path, state, what
        self.missing: list[str] = []
        self.used: set[str] = set()
        self.tensors: dict[str, tuple[str, torch.Tensor]] = {}

    def get(self, name: str) -> torch.Tensor | None:
        if name not in self.state:
            self.missing.append(name)
            return None
        self.used.add(name)
        return self.state[name]

    def take(self, source: str, target: str) -> torch.Tensor | None:
        value = self.get(source)
        if value is not None:
            self.tensors[target] = (source, value)
        return value

    def check_filter(self, name: str, expected: torch.Tensor) -> None:
        """A stored resampling filter must be the one the project's 'fir' networks use."""
        value = self.get(name)
        if value is not None and (value.shape != expected.shape or not torch.allclose(value.float(), expected)):
            raise CheckpointFormatError(f"{self.path}: {self.what} {name} is not the [1, 3, 3, 1] filter "
                                        f"StyleGAN2 uses; other filters are not supported")

    def finish(self) -> None:
        if self.missing:
            shown = ", ".join(self.missing[:6]) + (f" and {len(self.missing) - 6} more" if len(self.missing) > 6 else "")
            raise CheckpointFormatError(f"{self.path}: partial {self.what}: missing {shown}; "
                                        f"pass the complete checkpoint file")
        unknown = sorted(set(self.state) - self.used)
        if unknown:
            raise CheckpointFormatError(f"{self.path}: {self.what} has tensors this loader does not know "
                                        f"({', '.join(unknown[:4])}{' ...' if len(unknown) > 4 else ''}); "
                                        f"it is not a plain StyleGAN2 generator")


def channel_schedule(path: Path, widths: dict[int, int]) -> tuple[int, int]:
    """(channel_base, channel_max) with min(base / r, max) = the width at every resolution r.

    The project's networks (and NVlabs') set widths this way; rosinality's channel
    multipliers 1 and 2 fit it, other multipliers (e.g. 4) do not.
    """
    top = max(widths)
    channel_max = max(widths.values())
    # The highest resolution below the cap fixes base; if every width is the cap, any
    # base >= cap * top does.
    below = [r for r, c in widths.items() if c < channel_max]
    channel_base = widths[max(below)] * max(below) if below else channel_max * top
    if any(max(1, min(channel_base // r, channel_max)) != c for r, c in widths.items()):
        raise CheckpointFormatError(f"{path}: channel widths {dict(sorted(widths.items()))} per resolution are "
                                    f"not min(base / r, max) for any base and max; the project's networks "
                                    f"cannot hold this generator")
    return channel_base, channel_max


def build_generator(path: Path, init_kwargs: dict, tensors: dict[str, tuple[str, torch.Tensor]]) -> Generator:
    """Generator(resample='fir', **init_kwargs) holding tensors {project name: (file name, tensor)}."""
    try:
        generator = Generator(**init_kwargs, resample="fir")
    except ValueError as exc:
        raise CheckpointFormatError(f"{path}: {exc}") from exc
    expected = generator.state_dict()
    state = {}
    for name, (source, tensor) in tensors.items():
        tensor = tensor.detach().float()
        if name not in expected or tensor.numel() != expected[name].numel():
            want = tuple(expected[name].shape) if name in expected else "nothing"
            raise CheckpointFormatError(f"{path}: {source} has shape {tuple(tensor.shape)}, the network needs "
                                        f"{want}; the file's shapes do not agree with each other")
        state[name] = tensor.reshape(expected[name].shape)
    absent = sorted(set(expected) - set(state))
    if absent:  # a loader's own mistake, not the user's: say which project names it left empty
        raise CheckpointFormatError(f"{path}: the loader filled no value for {', '.join(absent[:4])}")
    generator.load_state_dict(state)
    return generator.eval()


@torch.no_grad()
def mean_w(generator: Generator, samples: int = W_AVG_SAMPLES, seed: int = 0) -> torch.Tensor:
    """Mean of mapped z ~ N(0, I): the centre of W, as rosinality's mean_latent estimates it."""
    z = torch.randn(samples, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    return torch.cat([generator.mapping(part)[:, 0] for part in z.split(1000)]).mean(dim=0)
