#!/usr/bin/env bash
# Train every variant with its paper defaults as one Hydra multirun, then compare them in
# TensorBoard. Extra arguments are passed through as overrides, e.g.:
#   scripts/compare_variants.sh dataset=ring train.steps=2000
#   scripts/compare_variants.sh model=dcgan seed=1
set -euo pipefail
cd "$(dirname "$0")/.."
python -m gan_exp.train -m \
  loss=gan,wgan,wgan_gp,dragan,loss_sensitive,ebgan,least_squares,hinge \
  log.progress=false "$@"
echo "compare with: tensorboard --logdir outputs/multirun"
