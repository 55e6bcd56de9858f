"""``python -m bana_mm.tools.run_pipeline [ARGS]``: the whole BANA job
(``tools/run_pipeline.py``) from an installed package."""
from . import run_tool

if __name__ == '__main__':
    run_tool('run_pipeline')
