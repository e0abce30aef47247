"""Run by ``torchrun`` in test_continual_cli.py: one tiny episode, data-parallel over CPU processes (gloo).

Each rank writes the sha256 of its final weights so the test can check that every rank ends identical.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from cl_helpers import blob_cases  # noqa: E402

from brainlesioncl.continual import EpisodeConfig, train_episode  # noqa: E402
from brainlesioncl.registry import ModelRegistry  # noqa: E402


def main(registry_dir: str, parent: str, out_dir: str) -> None:
    torch.distributed.init_process_group("gloo")
    torch.set_num_threads(1)
    rank = torch.distributed.get_rank()
    config = EpisodeConfig(strategy="ours", epochs=2, steps_per_epoch=2, crop_size=32, validation_fraction=0.0,
                           keep="last", precision="fp32", seed=0)
    result = train_episode(blob_cases(4, seed=1, disease="stroke"), "stroke", parent=parent,
                           registry=ModelRegistry(registry_dir, builtin_dirs=[]), config=config, device="cpu")
    network_hash = hashlib.sha256()
    for key, value in sorted(result.network_state.items()):
        network_hash.update(key.encode())
        network_hash.update(value.detach().cpu().numpy().tobytes())
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"version": result.version,
                                                             "hash": network_hash.hexdigest()}))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
