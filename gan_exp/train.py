"""`python -m gan_exp.train [overrides]`: the Hydra entrypoint; the work is in `trainer.train`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gan_exp.checkpoint import run_dir_of
from gan_exp.errors import ConfigError, DatasetError
from gan_exp.trainer import Interrupted, TrainingDiverged, train

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
log = logging.getLogger("gan_exp")


def _hydra_subdir(resume: str | None, run_dir: str) -> str:
    """`.hydra`, or a fresh subfolder of it when this run continues in an existing folder."""
    folder = Path(run_dir_of(resume, run_dir))
    if resume in (None, "", "null") or not (folder / ".hydra" / "config.yaml").exists():
        return ".hydra"
    return f".hydra/resumed_{datetime.now():%Y-%m-%d_%H-%M-%S}"


# hydra.run.dir / hydra.output_subdir in conf/train.yaml depend on `resume`
OmegaConf.register_new_resolver("gan_exp_run_dir", run_dir_of, replace=True)
OmegaConf.register_new_resolver("gan_exp_hydra_subdir", _hydra_subdir, replace=True)


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The `train` config composed as the command line would, without running it: for tests,
    scripts and notebooks."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    try:
        metrics = train(cfg, Path(hc.runtime.output_dir), hc.overrides.task)
    except Interrupted as stop:
        log.warning("stopped by %s; resume with resume=%s", stop, hc.runtime.output_dir)
        sys.exit(128 + stop.signum)
    except (ConfigError, TrainingDiverged) as err:
        if hc.mode == RunMode.MULTIRUN:
            raise  # Hydra reports which job failed
        kinds = {DatasetError: "data error", ConfigError: "config error"}
        kind = next((v for k, v in kinds.items() if isinstance(err, k)), "training diverged")
        log.error("%s: %s", kind, err)
        sys.exit(2 if isinstance(err, ConfigError) else 3)
    key = cfg.get("optimized_metric")
    return metrics.get(key) if key else None


if __name__ == "__main__":
    main()
