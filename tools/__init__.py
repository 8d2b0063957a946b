"""Load and fault tools that ``bench/`` and the system tests (tests/system/) share.

    loadgen        benchmark payloads and their wrk manifests, a gunicorn server
                   started on 127.0.0.1 (PID tracked), wrk through ``wrk_rotate.lua``
    reliability    the reliability scenarios: load, soak, a worker killed under load,
                   overload

The system tests run short variants and assert on them; bench/ runs the long
ones and prints figures. Nothing here imports ``tests``, and nothing here is
part of the installed service.
"""
