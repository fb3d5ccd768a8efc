"""Code generation backends. Only modules under here (and edgec.runtime) import TVM."""
