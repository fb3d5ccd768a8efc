"""C/C++ embedding bundles: the model, the TVM runtime for the target and a C API.

``write_bundle`` lays out a self-contained folder an app developer builds
with CMake (natively or with the cross toolchain file); ``build_bundle``
builds it here; ``run_emulated`` builds the aarch64 bundle and runs it under
qemu-user, which is how edgec proves ARM builds without a board.
"""
