"""The layering of docs/architecture.md, checked on the source: imports only
point down, no import cycle between modules, and every registered class is
registered by a visible ``@REGISTRY.register_module()`` decorator."""
import ast
import os
import os.path as osp
import re
from collections import defaultdict

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = osp.join(REPO, 'bana_mm')

#: Rank of each top-level sub-package; an import may only go to a rank
#: below, or stay inside its own package.
LAYERS = {
    'core': 0,
    'utils': 1,
    'version': 1,
    'evaluation': 2,
    'visualization': 2,
    'datagen': 2.5,
    'models': 3,
    'datasets': 3,
    'engine': 3,
    '': 3.5,  # bana_mm/__init__: registers the scope-neutral modules
    'det': 4,
    'seg': 4,
    'apis': 5,
    'tools': 6,
}


def _modules():
    for root, _, files in os.walk(PACKAGE):
        if '.mim' in root:
            continue
        for name in files:
            if name.endswith('.py'):
                path = osp.join(root, name)
                rel = osp.relpath(path, REPO)[:-3].replace(os.sep, '.')
                yield rel.removesuffix('.__init__'), path


def _project_imports(module: str, path: str):
    """(imported module, lineno) of every bana_mm import, at any depth."""
    tree = ast.parse(open(path).read())
    package = module if path.endswith('__init__.py') else \
        module.rsplit('.', 1)[0]
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                prefix = '.'.join(base)
                targets = [
                    f'{prefix}.{node.module}' if node.module else prefix
                ]
                if not node.module:  # from . import a, b
                    targets = [f'{prefix}.{a.name}' for a in node.names]
            else:
                targets = [node.module or '']
        for target in targets:
            if target == 'bana_mm' or target.startswith('bana_mm.'):
                yield target, node.lineno


def _layer(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def test_imports_point_down():
    wrong = []
    for module, path in _modules():
        src = _layer(module)
        for target, line in _project_imports(module, path):
            dst = _layer(target)
            if dst not in LAYERS:  # a module of the root package
                dst = ''
            if src == dst:
                continue
            if LAYERS[dst] >= LAYERS[src]:
                wrong.append(f'{path}:{line}: {module} ({src}) imports '
                             f'{target} ({dst})')
    assert not wrong, '\n'.join(wrong)


def test_core_imports_nothing_else_of_the_project():
    for module, path in _modules():
        if _layer(module) == 'core':
            for target, line in _project_imports(module, path):
                assert _layer(target) == 'core', f'{path}:{line}: {target}'


def test_no_import_cycle_between_modules():
    """Imports inside functions count too: deferring one hides a cycle
    from the interpreter, not from a reader (vgg16_largefov once imported
    vgg16_weights inside ``init_weights`` for that reason)."""
    graph = defaultdict(set)
    known = dict(_modules())
    for module, path in known.items():
        for target, _ in _project_imports(module, path):
            while target not in known and '.' in target:
                target = target.rsplit('.', 1)[0]  # from pkg import name
            if target != module:
                graph[module].add(target)
    # a package importing its own submodules in __init__ is not a cycle
    for module in list(graph):
        graph[module] = {
            t
            for t in graph[module]
            if not (known[module].endswith('__init__.py')
                    and t.startswith(module + '.'))
        }
    state, stack = {}, []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 'open':
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail('import cycle: ' + ' -> '.join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 'done'

    for node in list(graph):
        if node not in state:
            visit(node)


def test_every_registered_class_is_decorated_where_it_is_defined():
    import mmdet.registry as det_reg
    import mmengine.registry as root_reg
    import mmseg.registry as seg_reg

    import bana_mm.det  # noqa: F401
    import bana_mm.seg  # noqa: F401
    found = 0
    for registries in (root_reg, det_reg, seg_reg):
        for name in dir(registries):
            registry = getattr(registries, name)
            if not isinstance(registry, root_reg.Registry):
                continue
            for key, cls in registry.module_dict.items():
                if not getattr(cls, '__module__', '').startswith('bana_mm'):
                    continue
                source = open(
                    __import__(cls.__module__,
                               fromlist=['_']).__file__).read()
                pattern = (r'@\w+\.register_module\([^)]*\)\s*\n'
                           rf'class {re.escape(cls.__name__)}\b')
                assert re.search(pattern, source), (
                    f'{key} ({cls.__module__}) is not registered by a '
                    '@...register_module() decorator on its class')
                assert key == cls.__name__, f'{key} != {cls.__name__}'
                found += 1
    assert found >= 20
