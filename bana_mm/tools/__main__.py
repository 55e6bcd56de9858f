"""``python -m bana_mm.tools NAME [ARGS]``: run ``tools/NAME.py``."""
import sys

from . import list_tools, run_tool


def main() -> None:
    argv = sys.argv[1:]
    if not argv or argv[0] in ('-h', '--help', '--list'):
        print(__doc__.strip())
        print('tools: ' + ', '.join(list_tools()))
        print('example: python -m bana_mm.tools run_pipeline '
              '--work-dir work_dirs/demo --stages 1')
        return
    try:
        run_tool(argv[0], argv[1:])
    except FileNotFoundError as err:
        sys.exit(str(err))


if __name__ == '__main__':
    main()
