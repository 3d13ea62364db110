"""`python -m hub_bench` (`make bench`): the hub's real pipeline against a VTEX sandbox and a loopback ERP, measured.

A development tool of the source checkout (not part of the hub's wheel); it needs the hub installed
(``pip install -e .``) and the ``vtex_sandbox`` package next to it.

- ``cli``: the command line and the printed report.
- ``hub_setup``: run in the hub's environment (Django set up): migrate, create the store and its binding.
- ``procs``: CPU time and memory of a process tree, read from /proc.
- ``servers``: the sandbox (one or more stores) and the ERP as processes of their own, with light
  control endpoints; the ERP's ``amqp-sink`` and ``dir-sink`` forms for the amqp and sftp adapters,
  and its way back (invoices through the hub's ERP API).
- ``sshd``: a throw-away OpenSSH server for the sftp adapter's run.
- ``naive``: the honest sequential consumer a team writes by hand (the baseline).
- ``runner``: one run (fresh database, hub processes, burst and steady phases) and its figures.
- ``profile``: the summary of a py-spy profile (``--profile``).
- ``report``: the printed figures and the targets (PASS/MISS).
"""
