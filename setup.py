"""Build script: compiles the Cython MCTS extension and its C move generator (metadata lives in pyproject.toml)."""

import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "search._mcts",
        ["search/_mcts.pyx", "search/movegen.c"],
        depends=["search/movegen.h", *glob.glob("search/*.pxi")],
        include_dirs=[numpy.get_include(), "search"],
        extra_compile_args=["-O3"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
