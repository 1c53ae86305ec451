"""The layering in DESIGN.md: quant is Django-free, and the schema matches the migrations."""
import ast
import subprocess
import sys
from pathlib import Path

from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"django", "celery", "ninja", "parakeet", "trades", "marketdata", "strategies", "scanner", "storages", "boto3"}


def test_quant_imports_nothing_from_django_or_the_apps_statically():
    offenders = []
    for path in (ROOT / "quant").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_importing_all_of_quant_loads_no_django():
    code = (
        "import importlib, pkgutil, sys, quant\n"
        "for m in pkgutil.walk_packages(quant.__path__, 'quant.'): importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in %r)\n"
        "print(bad); sys.exit(1 if bad else 0)\n" % (FORBIDDEN,)
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_models_and_migrations_agree(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
