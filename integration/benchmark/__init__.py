"""`manage.py benchmark`: the real pipeline against a VTEX sandbox and a loopback ERP, measured.

- ``procs``: CPU time and memory of a process tree, read from /proc.
- ``servers``: the sandbox and the ERP as processes of their own, with light control endpoints.
- ``naive``: the sequential consumer a team writes by hand (the baseline).
- ``runner``: one run (fresh database, hub processes, burst and steady phases) and its figures.
- ``report``: the printed table and the targets.
"""
