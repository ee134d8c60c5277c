"""Architectures: each module has `build(data, ...) -> GANModels`, selected by `model=` config."""
