"""npnet's benchmark of its recurrent cells, as a small package; ``bench_rnn.py`` is its CLI.

Modules, in the order the CLI uses them (each one idea, each at most 300 lines):

    threads     pins the BLAS / OpenMP threads; imported first, before anything loads NumPy
    spec        what is measured: the cells, the (B, T, D, H) configurations, the dtypes, flops
    machine     CPU, BLAS libraries, load average and git commit, for the report's header
    contenders  npnet's cell, the plain reference (npnet.cells.reference) and PyTorch
    timing      the clocks and the interleaved rounds that time the contenders
    floor       the GEMM peak and the GEMMs-plus-exp lower bound of any NumPy cell
    memory      activation-cache bytes (full and truncated BPTT) and the tracemalloc peak
    profiling   cProfile and a line profiler over the cell's source
    race        experiments/memory.py against a PyTorch twin, to a target recall
    report      the markdown tables, the verdicts against the targets, the JSON file

``compare.py`` is a second CLI on the same pieces: the before/after table of npnet's cell
times, this checkout against an older one, timed interleaved in one process.
``bench_train.py`` is a third: one whole training step (``SequenceRunner.train_step``) of five
workloads against a PyTorch twin, with where npnet's time goes; its workloads live in
``train_workloads``.

This file imports nothing, so that ``import benchmarks.threads`` runs before NumPy loads.
"""
