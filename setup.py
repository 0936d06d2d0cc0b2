"""Ships migrations/ and the browser client inside the wheel, without moving them in the tree.

Everything else lives in setup.cfg. The directories are copied into the built package as
backend/_data/<name>; backend.config.data_dir finds them there, or at the top of a checkout.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# What an installed service needs at run time: the migrations, and what the web process serves
# (the demo page, the client modules, the ops page). Not the client's tests or node_modules.
SHIPPED = {
    "migrations": ("alembic.ini", "env.py", "script.py.mako", "README", "versions/*.py"),
    "client": ("demo/*", "src/*", "ops/*"),
}


class build_py_with_data(build_py):
    """build_py, plus the shipped directories copied under backend/_data."""

    def run(self) -> None:
        super().run()
        target_root = Path(self.build_lib) / "backend" / "_data"
        for directory, patterns in SHIPPED.items():
            for pattern in patterns:
                for source in sorted((ROOT / directory).glob(pattern)):
                    if source.is_file():
                        target = target_root / source.relative_to(ROOT)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(source, target)


setup(cmdclass={"build_py": build_py_with_data})
