"""The Apache TVM (Relax) backend: ONNX import, the Relax pipeline, build and link.

Import ``edgec.backend.tvm.build`` for compiling; ``coverage`` answers which
ONNX ops TVM imports without loading TVM (for ``edgec inspect``).
"""
