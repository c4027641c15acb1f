"""The layout a newcomer finds his way in: no module of the apps passes 500
lines and no two modules import each other, directly or round a ring, even
from inside a function, and imports point one way, from api down to crm
(scripts/layout.py; docs/layout.md shows the tree)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("layout", ROOT / "scripts" / "layout.py")
layout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layout)


def test_no_module_of_the_apps_passes_the_size_limit():
    assert layout.long_modules(layout.modules()) == {}


def test_no_two_modules_import_each_other_directly_or_round_a_ring():
    assert layout.rings(layout.imports(layout.modules())) == []


def test_dependencies_point_one_way_from_api_down_to_crm():
    assert layout.upward(layout.imports(layout.modules())) == []


def test_a_ring_hidden_inside_a_function_is_still_found(tmp_path):
    app = tmp_path / "crm"
    (app / "parts").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "parts" / "__init__.py").write_text("")
    (app / "tasks.py").write_text("from crm.parts import services\n")
    (app / "parts" / "services.py").write_text("from . import sending\n")
    (app / "parts" / "sending.py").write_text("def enqueue():\n    from crm.tasks import send\n")
    (app / "models.py").write_text("x = 1\n" * (layout.MAX_LINES + 1))
    found = layout.modules(tmp_path)
    assert layout.rings(layout.imports(found)) == [["crm.parts.sending", "crm.parts.services", "crm.tasks"]]
    assert layout.long_modules(found) == {"crm.models": layout.MAX_LINES + 1}
    assert layout.upward({"crm.models": {"segments.models"}, "segments.models": {"crm.models"}}) == ["crm.models -> segments.models"]
