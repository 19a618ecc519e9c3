"""A pSp or e4e checkpoint as the table's networks: its decoder and its encoder with the input stage.

pSp's and e4e's training (`coach.py`) save `{'state_dict': net.state_dict(), 'opts':
vars(opts), 'latent_avg': ...}`: the encoder under `encoder.*` (IR-SE50 names:
input_layer, body.{i}.res_layer / shortcut_layer, styles.{i}.convs / linear, latlayer1,
latlayer2; `linear` alone for the W encoder), the rosinality generator under `decoder.*`,
and latent_avg ([w_dim], [1, w_dim] or one row per style). From `opts`: `encoder_type`,
`input_nc`, `output_size` (pSp) or `stylegan_size` (e4e), `start_from_latent_avg`,
`learn_in_w`, `dataset_type`. The encoder's shape (stage depths and widths, style count,
input size) is read from its tensors, so the import needs no other description.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from inference.published import IRSE50_UNITS, IRSE50_WIDTHS, PublishedEncoder
from training.editing.checkpoints import Checkpoint
from training.editing.rosinality import load_rosinality, recorded_lr_mlp
from training.editing.stylegan_state import CheckpointFormatError, LoadedGenerator

ENCODER_TYPES = {"GradualStyleEncoder": "psp", "Encoder4Editing": "e4e", "BackboneEncoderUsingLastLayerIntoW": "psp-w"}
OPTS_READ = ("encoder_type", "input_nc", "label_nc", "output_size", "stylegan_size", "start_from_latent_avg",
             "learn_in_w", "dataset_type", "lr_mlp")


@dataclass
class ImportedSketchModel:
    loaded: LoadedGenerator       # the decoder, Generator(resample='fir')
    encoder: PublishedEncoder     # eval mode, its input stage inside
    opts: dict                    # the options read from the file (OPTS_READ that it has)
    notes: list[str] = field(default_factory=list)  # what the import assumed, for the card


def options(record: dict) -> dict:
    """The file's training options as a dict (pSp saves vars(opts); some forks the Namespace)."""
    opts = record.get("opts")
    if opts is None:
        return {}
    return dict(opts) if isinstance(opts, dict) else dict(vars(opts))


def _stages(path, state: dict) -> tuple[list[int], list[int]]:
    """(units per stage, widths) from body.{i}.res_layer.1.weight: a stage starts where the width changes."""
    units: list[int] = []
    widths: list[int] = []
    count = len([k for k in state if re.fullmatch(r"body\.\d+\.res_layer\.1\.weight", k)])
    for i in range(count):
        depth = int(state[f"body.{i}.res_layer.1.weight"].shape[0])
        if not widths or depth != widths[-1]:
            widths.append(depth)
            units.append(0)
        units[-1] += 1
    if len(widths) != 4:
        raise CheckpointFormatError(f"{path}: the encoder's backbone has {len(widths)} stages of widths {widths}, "
                                    f"not IR-SE50's 4; it is not a pSp/e4e encoder this import knows")
    return units, widths


def read_sketch_model(checkpoint: Checkpoint, input_range: str | None = None,
                      mapping_lr_multiplier: float | None = None) -> ImportedSketchModel:
    """The networks of a pSp/e4e checkpoint (see the module docstring); input_range overrides
    the one read from opts ('0:1' for one-channel sketches, '-1:1' for normalised RGB)."""
    path, record = checkpoint.path, checkpoint.record
    opts = options(record)
    notes: list[str] = []
    state = {k[len("encoder."):]: v for k, v in record["state_dict"].items() if k.startswith("encoder.")}
    encoder_type = opts.get("encoder_type")
    if encoder_type is None:
        encoder_type = "BackboneEncoderUsingLastLayerIntoW" if "linear.weight" in state else "GradualStyleEncoder"
        notes.append(f"opts has no encoder_type; {encoder_type} read from the tensors' names")
    kind = ENCODER_TYPES.get(encoder_type)
    if kind is None:
        raise CheckpointFormatError(f"{path}: a {checkpoint.format} checkpoint with the {encoder_type} encoder; "
                                    f"the table imports {', '.join(ENCODER_TYPES)}")
    if int(opts.get("label_nc") or 0) > 0:
        raise CheckpointFormatError(f"{path}: a pSp model for {opts['label_nc']}-class label maps "
                                    f"(dataset_type {opts.get('dataset_type')!r}); the table gives it one-channel "
                                    f"sketches: import a sketch model")
    if mapping_lr_multiplier is None and recorded_lr_mlp(record) is None:
        notes.append("the mapping's lr multiplier is 0.01 (rosinality's default; the file does not record it)")
    loaded = load_rosinality(path, record, mapping_lr_multiplier=mapping_lr_multiplier, file_format=checkpoint.format)
    generator = loaded.generator
    size = opts.get("output_size", opts.get("stylegan_size"))
    if size is not None and int(size) != generator.resolution:
        raise CheckpointFormatError(f"{path}: opts says the decoder draws {size} px, but its tensors make a "
                                    f"{generator.resolution} px generator; the file's parts do not agree")
    if "input_layer.0.weight" not in state:
        raise CheckpointFormatError(f"{path}: partial {checkpoint.format} encoder: missing input_layer.0.weight; "
                                    f"pass the complete checkpoint file")
    input_nc = int(state["input_layer.0.weight"].shape[1])
    if input_nc not in (1, 3):
        raise CheckpointFormatError(f"{path}: its encoder takes {input_nc} input channels; the table gives "
                                    f"one-channel sketches (or gray RGB): import a sketch or image model")
    if input_range is None:
        # pSp's sketch transforms are Resize + ToTensor ([0, 1]); its image ones normalise to [-1, 1].
        input_range = "0:1" if input_nc == 1 else "-1:1"
        notes.append(f"input range {input_range} (pSp's transforms for {input_nc}-channel inputs)")
    units, widths = _stages(path, state)
    if kind == "psp-w":
        num_styles, style_width, input_size = generator.num_ws, generator.w_dim, 256
    else:
        num_styles = len([k for k in state if re.fullmatch(r"styles\.\d+\.linear\.weight", k)])
        if num_styles != generator.num_ws:
            raise CheckpointFormatError(f"{path}: the encoder gives {num_styles} styles but its decoder takes "
                                        f"{generator.num_ws}; the file's parts do not agree")
        style_width = int(state["styles.0.convs.0.weight"].shape[0])
        coarse_convs = len([k for k in state if re.fullmatch(r"styles\.0\.convs\.\d+\.weight", k)])
        input_size = 16 * 2 ** coarse_convs  # coarse styles start at input / 16 and halve to 1x1
    if (units, widths) != (list(IRSE50_UNITS), list(IRSE50_WIDTHS)):
        notes.append(f"backbone stages {units} of widths {widths} (IR-SE50 has {list(IRSE50_UNITS)}, "
                     f"{list(IRSE50_WIDTHS)})")
    reduction = widths[0] // int(state["body.0.res_layer.5.fc1.weight"].shape[0]) if "body.0.res_layer.5.fc1.weight" \
        in state else 16
    start = bool(opts.get("start_from_latent_avg", True))
    if "start_from_latent_avg" not in opts:
        notes.append("opts has no start_from_latent_avg; taken as true (pSp's and e4e's setting)")
    try:
        encoder = PublishedEncoder(kind, generator.resolution, generator.num_ws, generator.w_dim, input_nc=input_nc,
                                   input_range=input_range, input_size=input_size, units=units, widths=widths,
                                   style_width=style_width, se_reduction=reduction, start_from_latent_avg=start)
    except ValueError as exc:
        raise CheckpointFormatError(f"{path}: the {checkpoint.format} encoder does not fit the table's: {exc}") from exc
    expected = encoder.state_dict()
    own = {"latent_avg", "w_avg"}  # filled below, not from encoder.*
    missing = sorted(set(expected) - set(state) - own)
    unknown = sorted(set(state) - set(expected))
    if missing or unknown:
        shown = ", ".join(missing[:6]) if missing else ", ".join(unknown[:6])
        raise CheckpointFormatError(
            f"{path}: {'partial' if missing else 'unexpected'} {checkpoint.format} encoder: "
            f"{'missing' if missing else 'tensors this import does not know:'} {shown}"
            f"{' ...' if len(missing or unknown) > 6 else ''}; pass the complete checkpoint of pSp's or e4e's training")
    for name, value in state.items():
        if tuple(value.shape) != tuple(expected[name].shape):
            raise CheckpointFormatError(f"{path}: encoder.{name} has shape {tuple(value.shape)}, the {encoder_type} "
                                        f"read from the file needs {tuple(expected[name].shape)}")
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    tensors["w_avg"] = generator.w_avg.detach().clone()
    tensors["latent_avg"] = _latent_avg(path, record, start, generator)
    encoder.load_state_dict(tensors)
    opts_read = {k: opts[k] for k in OPTS_READ if k in opts}
    return ImportedSketchModel(loaded, encoder.eval(), opts_read, notes)


def _latent_avg(path, record: dict, start: bool, generator) -> torch.Tensor:
    """latent_avg as [num_ws, w_dim]: the file's rows (one, or one per style); zeros if unused."""
    num_ws, w_dim = generator.num_ws, generator.w_dim
    if not start:
        return torch.zeros(num_ws, w_dim)
    value = record.get("latent_avg")
    if value is None:
        raise CheckpointFormatError(f"{path}: opts says start_from_latent_avg but the file has no latent_avg; "
                                    f"pass the checkpoint pSp's or e4e's training saved")
    value = torch.as_tensor(value).float().reshape(-1, w_dim) if torch.as_tensor(value).numel() % w_dim == 0 else None
    if value is None or value.shape[0] not in (1, num_ws):
        raise CheckpointFormatError(f"{path}: latent_avg is not [{w_dim}], [1, {w_dim}] or [{num_ws}, {w_dim}]")
    return value.expand(num_ws, w_dim).clone()
