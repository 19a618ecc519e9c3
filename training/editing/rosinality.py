"""rosinality/stylegan2-pytorch checkpoints (`.pt`) as the project's generator.

The format pSp, e4e and HyperStyle build on. The file is `torch.save` of a dict with
`g_ema`, the EMA generator's state dict (training snapshots also hold g, d, optimiser
states and the argparse `args`), and sometimes `latent_avg` (convert_weight.py, pSp). pSp
and e4e files hold the generator under `state_dict` as `decoder.*`.

Names, for blocks b = 1 .. log2(R) - 2 (block 0 is 4x4) and mapping layers i = 1 .. n_mlp:

    style.{i}.weight, .bias                 -> mapping.layers.{i-1}.weight, .bias
    input.input [1, C, 4, 4]                -> synthesis.blocks.0.const [C, 4, 4]
    conv1.*, noises.noise_0, to_rgb1.*      -> synthesis.blocks.0.conv1, .torgb
    convs.{2b-2}.*, convs.{2b-1}.*          -> synthesis.blocks.{b}.conv0, .conv1
    noises.noise_{2b-1}, noise_{2b}         -> their noise_const [r, r]
    to_rgbs.{b-1}.*                         -> synthesis.blocks.{b}.torgb
  within a styled conv / toRGB:
    conv.weight [1, O, I, k, k]             -> conv.weight [O, I, k, k]
    conv.modulation.weight, .bias           -> conv.affine.weight, .bias
    noise.weight [1]                        -> noise_strength []
    activate.bias [O] / bias [1, 3, 1, 1]   -> bias

Both store weights at unit variance with the same run-time gains (1/sqrt(fan_in), lr_mul
in the mapping), so tensors copy over unchanged. The blur and upsample kernels are
buffers of the file and must be the [1, 3, 3, 1] filter. rosinality's generator has no
w_avg: `latent_avg` is used where the file has it, else the mean of 10,000 mapped z.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from training.editing.stylegan_state import (
    CheckpointFormatError, LoadedGenerator, StateReader, build_generator, channel_schedule, mean_w,
)

DEFAULT_LR_MLP = 0.01  # rosinality's lr_mlp, when neither the file's args nor the caller says
WANTED = "a rosinality .pt, a pSp or e4e .pt, a stylegan2-ada .pkl or a New Snow checkpoint"


def read_torch_file(path: Path):
    """torch.load with weights_only (no code runs); training snapshots' argparse `args` allowed."""
    from inference.model_files import check_file, read_torch

    return read_torch(check_file(path, WANTED)[0], WANTED)


def is_generator_state(record) -> bool:
    """A bare g_ema state dict (torch.save(g_ema.state_dict())): rosinality's names at the top."""
    return isinstance(record, dict) and "input.input" in record and "style.1.weight" in record


def generator_state(path: Path, record) -> tuple[dict, torch.Tensor | None]:
    """(g_ema state dict, latent_avg or None) from a rosinality or pSp/e4e file's record."""
    from inference.model_files import describe

    if is_generator_state(record):
        return dict(record), None
    if not isinstance(record, dict):
        raise CheckpointFormatError(f"{path}: a torch file holding {describe(record)}, not a StyleGAN2 "
                                    f"checkpoint; pass {WANTED}")
    latent_avg = record.get("latent_avg")
    if "g_ema" in record:
        return dict(record["g_ema"]), latent_avg
    state = record.get("state_dict")
    if isinstance(state, dict) and any(k.startswith("decoder.") for k in state):
        return {k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}, latent_avg
    raise CheckpointFormatError(f"{path}: a torch file holding {describe(record)}: no 'g_ema' (rosinality) or "
                                f"'state_dict' with 'decoder.*' (pSp, e4e); pass {WANTED}")


def recorded_lr_mlp(record) -> float | None:
    """The mapping's lr multiplier a training snapshot's `args` (or a pSp/e4e `opts`) records."""
    if not isinstance(record, dict):
        return None
    for key in ("args", "opts"):
        options = record.get(key)
        value = options.get("lr_mlp") if isinstance(options, dict) else getattr(options, "lr_mlp", None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


# rosinality's make_kernel([1, 3, 3, 1]) * factor ** 2, the buffer of every Blur and Upsample
UPSAMPLE_KERNEL = torch.outer(torch.tensor([1.0, 3.0, 3.0, 1.0]), torch.tensor([1.0, 3.0, 3.0, 1.0])) / 16.0


def load_rosinality(path: str | Path, record=None, mapping_lr_multiplier: float | None = None,
                    file_format: str = "rosinality") -> LoadedGenerator:
    """mapping_lr_multiplier: given, it wins over the file's `args.lr_mlp`; neither: 0.01.
    file_format: what the file is ('rosinality', 'psp', 'e4e'), for the logs and provenance."""
    path = Path(path)
    record = record if record is not None else read_torch_file(path)
    state, latent_avg = generator_state(path, record)
    if mapping_lr_multiplier is None:
        mapping_lr_multiplier = recorded_lr_mlp(record)
    reader = StateReader(path, state, f"{file_format} generator")
    n_mlp = len([k for k in state if re.fullmatch(r"style\.\d+\.weight", k)])
    n_up = len([k for k in state if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k)])
    if n_mlp == 0 or "input.input" not in state:
        raise CheckpointFormatError(f"{path}: no style.*.weight or input.input: not a rosinality StyleGAN2 "
                                    f"generator state dict")
    take, tensors = reader.take, reader.tensors
    for i in range(1, n_mlp + 1):
        for part in ("weight", "bias"):
            take(f"style.{i}.{part}", f"mapping.layers.{i - 1}.{part}")

    def styled(source: str, target: str, noise: str) -> torch.Tensor | None:
        weight = take(f"{source}.conv.weight", f"{target}.conv.weight")
        take(f"{source}.conv.modulation.weight", f"{target}.conv.affine.weight")
        take(f"{source}.conv.modulation.bias", f"{target}.conv.affine.bias")
        take(f"{source}.noise.weight", f"{target}.noise_strength")
        take(f"{source}.activate.bias", f"{target}.bias")
        take(noise, f"{target}.noise_const")
        return weight

    def to_rgb(source: str, target: str) -> torch.Tensor | None:
        weight = take(f"{source}.conv.weight", f"{target}.conv.weight")
        take(f"{source}.conv.modulation.weight", f"{target}.conv.affine.weight")
        take(f"{source}.conv.modulation.bias", f"{target}.conv.affine.bias")
        take(f"{source}.bias", f"{target}.bias")
        return weight

    const = take("input.input", "synthesis.blocks.0.const")
    styled("conv1", "synthesis.blocks.0.conv1", "noises.noise_0")
    rgb = to_rgb("to_rgb1", "synthesis.blocks.0.torgb")
    widths = {4: int(const.shape[1])}
    for b in range(1, n_up + 1):
        target = f"synthesis.blocks.{b}"
        weight = styled(f"convs.{2 * b - 2}", f"{target}.conv0", f"noises.noise_{2 * b - 1}")
        styled(f"convs.{2 * b - 1}", f"{target}.conv1", f"noises.noise_{2 * b}")
        to_rgb(f"to_rgbs.{b - 1}", f"{target}.torgb")
        reader.check_filter(f"convs.{2 * b - 2}.conv.blur.kernel", UPSAMPLE_KERNEL)
        reader.check_filter(f"to_rgbs.{b - 1}.upsample.kernel", UPSAMPLE_KERNEL)
        if weight is not None:
            widths[4 * 2 ** b] = int(weight.shape[1])
    reader.finish()
    w_dim = int(state["style.1.weight"].shape[1])
    channel_base, channel_max = channel_schedule(path, widths)
    tensors["mapping.w_avg"] = ("(set below)", torch.zeros(w_dim))
    generator = build_generator(path, dict(
        resolution=4 * 2 ** n_up, channels=int(rgb.shape[1]), z_dim=w_dim, w_dim=w_dim, mapping_layers=n_mlp,
        channel_base=channel_base, channel_max=channel_max,
        mapping_lr_multiplier=DEFAULT_LR_MLP if mapping_lr_multiplier is None else float(mapping_lr_multiplier),
    ), tensors)
    if latent_avg is not None:
        latent_avg = torch.as_tensor(latent_avg).float()
        if latent_avg.numel() % w_dim:
            raise CheckpointFormatError(f"{path}: latent_avg has shape {tuple(latent_avg.shape)}, not [w_dim={w_dim}] "
                                        f"or [n, {w_dim}]")
        latent_avg = latent_avg.reshape(-1, w_dim).mean(dim=0)  # pSp stores [1, w_dim] or one per layer
        generator.mapping.w_avg.copy_(latent_avg)
        source = "the file's latent_avg"
    else:
        generator.mapping.w_avg.copy_(mean_w(generator))
        source = "the mean of 10000 mapped z (seed 0): the file has no latent_avg"
    return LoadedGenerator(generator, path, file_format, source)
