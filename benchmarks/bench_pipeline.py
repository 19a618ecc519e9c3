"""Benchmark the live table: each stage alone, then the whole loop on the simulated pen camera.

    python benchmarks/bench_pipeline.py [--bundle DIR] [--seconds 20] [--projector 1280x720]
                                        [--transition auto|crossfade|latent] [--threads N] [--json F]

The work is in `table/bench.py` (also `newsnow bench --pipeline`).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from table.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
