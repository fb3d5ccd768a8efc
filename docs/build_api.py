"""Build the Python API reference (``make docs``): pdoc over edgec's public API.

    python docs/build_api.py [OUT_DIR]      # default docs/api (git-ignored)

Documents the top-level ``edgec`` package (its ``__all__``) and the modules
whose classes the API returns: ``edgec.verification`` (``verify``'s report),
``edgec.model_info`` (``inspect``'s result), ``edgec.runtime.session``
(``Artifact.session()``), ``edgec.stats`` (its timings) and ``edgec.errors``
(the error classes and exit codes). Every other submodule is internal and
left out.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pdoc
import pdoc.render

import edgec
from edgec import api

DOCS = Path(__file__).resolve().parent
MODULES = ["edgec", r"!edgec\..*", "edgec.errors", "edgec.verification", "edgec.model_info",
           "edgec.runtime.session", "edgec.stats"]


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DOCS / "api"
    # compile, verify, inspect and targets are loaded on first use by edgec.__getattr__, so
    # that `import edgec` stays light; pdoc reads the module's __dict__, so put them there.
    for name in edgec._COMPILER_API:
        setattr(edgec, name, getattr(api, name))
    pdoc.render.configure(docformat="google", footer_text=f"edgec {edgec.__version__}")
    pdoc.pdoc(*MODULES, output_directory=out)
    if "tvm" in sys.modules:  # the API promises that documenting (importing) it needs no TVM
        print("build_api: importing the documented modules imported tvm", file=sys.stderr)
        return 1
    print(f"API reference: {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
