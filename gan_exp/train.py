"""`python -m gan_exp.train [overrides]`: the Hydra entrypoint; the work is in `trainer.train`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gan_exp.errors import ConfigError, DatasetError
from gan_exp.trainer import TrainingDiverged, train

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
log = logging.getLogger("gan_exp")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    try:
        metrics = train(cfg, Path(hc.runtime.output_dir))
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
