"""Latent editing of StyleGAN generators (thesis Chapters 2.5, 3 and 4).

- `directions`: the linear edit w' = w + alpha n on chosen W+ layers, and the `.npz`
  file of directions that `newsnow edit grid` reads;
- `interfacegan`, `ganspace`, `sefa`: the three baseline ways to find directions;
- `tensor`: mode-n unfolding, folding, products and the HOSVD (tensorly underneath);
- `taugan`: Paper I's tensor model (standardised, vectorised or style-separated,
  parameters by alternating ridge + lasso);
- `expression`: Paper II's 5-mode model, parameter recovery, global expression and
  rotation directions in W+;
- `nrsfm`: Paper III's rank-one non-rigid structure from motion and camera model R(q);
- `control3d`: the regressor phi: w -> q and the linear and gradient 3D edits;
- `inversion`: optimisation-based inversion of images into W or W+ (thesis Eq 2.20);
- `generator`: the generator an edit works on (a bundle, or a checkpoint file) and its
  torch weights for the methods that need them;
- `checkpoints`, `rosinality`, `stylegan2_ada`, `stylegan_state`: published StyleGAN2
  checkpoints (.pt, .pkl) as the project's generator;
- `faces`: dlib's 68 landmarks and identity distance (the `[faces]` extra);
- `grid`: the editing grid image, labelled (ONNX Runtime only);
- `commands`: `newsnow edit directions|grid`; `taugan_commands`: `edit taugan` (Paper I);
  `tensor_commands`: `edit tensor` (Paper II); `nrsfm_commands`: `edit nrsfm` (Paper III);
  `cli_args`: the arguments they share.

Everything here is training-side research code and may import torch, except `grid`
and `directions`, which run on ONNX Runtime so a curator can look at directions on
a kiosk-like machine.
"""
