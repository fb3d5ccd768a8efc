"""edgec's own TIR kernels: hand-scheduled, target-parameterised templates for
the operators that dominate edge models (TVM 0.27 ships no CPU schedules, so
its default lowering runs convolutions as naive loops). ``dispatch`` puts
them into the Relax module; ops they do not cover keep TVM's lowering."""
