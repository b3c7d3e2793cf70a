"""Conversion jobs: queued by hand or by automation, run by a runner, shown on a page.

``queue`` (making and reading job rows), ``automation`` (the listener that queues jobs
when an ROI collection is stored), ``runner`` (the dispatcher that claims jobs and runs
them on an executor), ``leases`` (claiming, renewing and finishing a job's row so that
two services never run one job), ``task`` (the worker side), ``lifespan`` (runner start
and stop with the app), ``api``, ``pages``, ``presenters``, ``schemas``.
"""
