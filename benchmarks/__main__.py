"""`python -m benchmarks` runs every part; `python -m benchmarks import --rows 100000` one.

A part is a module `benchmarks/<name>.py` with `main(argv: list[str]) -> None`; the module
name `imports` is also reachable as `import` (a keyword).
"""

from __future__ import annotations

import importlib
import sys

PARTS = {"import": "imports", "imports": "imports", "sync": "sync", "scale": "scale"}
ORDER = ["imports", "sync", "scale"]


def main() -> None:
    args = sys.argv[1:]
    chosen: list[str] = []
    while args and not args[0].startswith("-"):
        chosen.append(PARTS.get(args[0], args[0]))
        args = args[1:]
    for name in chosen or ORDER:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError:
            if chosen:
                raise SystemExit(f"no benchmark named {name!r}") from None
            continue
        print(f"== {name}")
        module.main(args)


if __name__ == "__main__":
    main()
